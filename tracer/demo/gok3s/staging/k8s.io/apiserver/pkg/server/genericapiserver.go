// Package server stands in for k8s.io/apiserver/pkg/server, the generic API server that
// kube-apiserver is built on. STAND-IN: not Kubernetes code; it keeps the import path and the
// startup shape that matters to a profiler: reach the storage (kine's unix socket), listen
// (k3s: 127.0.0.1:6444), answer GET /readyz with 503 while post-start hooks run, 200 after.
package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"k3sprof.invalid/truth"
)

// Config is the part of the generic server's config the stand-in needs.
type Config struct {
	BindAddress     string        // host:port of the secure port (k3s: 127.0.0.1:6444)
	StorageEndpoint string        // kine's unix socket
	HookCPU         time.Duration // thread CPU the post-start hook burns before /readyz is 200
	Truth           *truth.Log
}

// GenericAPIServer serves /readyz; ready flips when the post-start hooks are done.
type GenericAPIServer struct {
	cfg   Config
	ready int32 // atomic: 1 once RunPostStartHooks returned
}

// New makes a server (nothing runs yet).
func New(cfg Config) *GenericAPIServer { return &GenericAPIServer{cfg: cfg} }

// PrepareRun connects to the storage once (the apiserver's first etcd/kine dial), then
// NonBlockingRun listens and serves; the post-start hooks then run on this goroutine.
func (s *GenericAPIServer) PrepareRun(ctx context.Context) error {
	c, err := net.Dial("unix", s.cfg.StorageEndpoint)
	if err != nil {
		return fmt.Errorf("kube-apiserver: storage %s: %w", s.cfg.StorageEndpoint, err)
	}
	c.Close()
	if err := s.NonBlockingRun(ctx); err != nil {
		return err
	}
	s.RunPostStartHooks()
	atomic.StoreInt32(&s.ready, 1)
	s.cfg.Truth.Write("ready", truth.Event{"component": "kube-apiserver", "t_ns": truth.Now()})
	return nil
}

// NonBlockingRun listens on the secure port and serves in the background until ctx ends.
func (s *GenericAPIServer) NonBlockingRun(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.BindAddress)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	s.cfg.Truth.Write("listen", truth.Event{
		"component": "kube-apiserver", "endpoint": l.Addr().String(), "t_ns": truth.Now(),
	})
	fmt.Fprintf(os.Stderr, "kube-apiserver: Serving securely on %s\n", l.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", s.serveReadyz)
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	go srv.Serve(l)
	return nil
}

// serveReadyz answers like the real /readyz: 503 with the failing check until ready.
func (s *GenericAPIServer) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	if atomic.LoadInt32(&s.ready) == 1 {
		fmt.Fprint(w, "ok")
		return
	}
	http.Error(w, "[-]poststarthook/start-kube-apiserver-admission-initializer failed: not finished",
		http.StatusServiceUnavailable)
}
