// Package kubelet stands in for k8s.io/kubernetes/pkg/kubelet. STAND-IN: not Kubernetes code;
// it keeps the import path and the kubelet's startup shape inside k3s: block until the API
// server is ready, then serve the kubelet port (k3s: 10250).
//
// Planted work (b): the readiness poll. In k3s one poller (GET /readyz every 2 s, a fresh
// connection each time) gates the kubelet; here the kubelet itself polls the apiserver's
// listener in the SAME process every Interval with a fresh TCP connection, and writes one
// "poll" truth line per attempt (its start, when the answer came, and the answer).
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"k3sprof.invalid/truth"
)

// Config is the part of the kubelet's config the stand-in needs.
type Config struct {
	APIServerReadyz string        // http://127.0.0.1:6444/readyz
	Interval        time.Duration // poll cadence
	Timeout         time.Duration // give up after this
	Address         string        // the kubelet port's host:port
	Truth           *truth.Log
}

// WaitForAPIServer polls /readyz until it answers 200 (attempts start every Interval, like
// wait.PollUntilContextTimeout's ticker), or fails after Timeout.
func WaitForAPIServer(ctx context.Context, cfg Config) error {
	client := &http.Client{
		// a new connection per attempt: k3s sets req.Close on its readiness requests
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   cfg.Interval * 8 / 10,
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	deadline := time.Now().Add(cfg.Timeout)
	for attempt := 0; ; attempt++ {
		start := truth.Now()
		answer := probeReadyz(ctx, client, cfg.APIServerReadyz)
		cfg.Truth.Write("poll", truth.Event{
			"component": "kubelet", "package": "k8s.io/kubernetes/pkg/kubelet",
			"target_component": "kube-apiserver", "url": cfg.APIServerReadyz,
			"attempt": attempt, "start_ns": start, "end_ns": truth.Now(), "answer": answer,
		})
		if answer == "200" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubelet: API server not ready after %s (last answer %s)", cfg.Timeout, answer)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// probeReadyz makes one attempt; the answer is the HTTP status, "refused" (nobody listens
// yet: the connect's outcome the recorder sees as refused) or "error: ...".
func probeReadyz(ctx context.Context, client *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "refused"
		}
		return "error: " + err.Error()
	}
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// ListenAndServeKubeletServer opens the kubelet port (what the k3s profile's end milestone
// listen:10250 waits for) and closes every connection until ctx ends.
func ListenAndServeKubeletServer(ctx context.Context, cfg Config) error {
	l, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	cfg.Truth.Write("listen", truth.Event{"component": "kubelet", "endpoint": l.Addr().String(), "t_ns": truth.Now()})
	fmt.Fprintf(os.Stderr, "kubelet: Starting to listen on %s\n", l.Addr())
	go func() { <-ctx.Done(); l.Close() }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return nil
}
