// Package endpoint stands in for github.com/k3s-io/kine/pkg/endpoint, the etcd-API shim k3s
// embeds as its default datastore (sqlite). STAND-IN: this is not kine's code; it keeps kine's
// import path and the shape of its startup: bring the database up to date (sqlite commits,
// each one an fsync of the database file), then listen on unix://kine.sock in k3s's server
// directory ("Kine available at unix://kine.sock").
//
// Planted work (d): Fsyncs commits of one 4 KiB page each, each followed by fsync(2) on the
// same locked OS thread; the truth log gets one "fsync" line per call (start/end ns, tid).
package endpoint

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"k3sprof.invalid/truth"
)

// Config is the part of kine's endpoint.Config the stand-in needs.
type Config struct {
	DataDir string // k3s's server dir: db/state.db and kine.sock live here
	Fsyncs  int    // commits (write + fsync) before kine listens
	Truth   *truth.Log
}

// ETCDConfig is what kine hands back to k3s: where the apiserver finds its storage.
type ETCDConfig struct {
	Endpoint string // unix socket path
}

// Listen brings the database up to date, then serves kine.sock until ctx ends.
func Listen(ctx context.Context, cfg Config) (ETCDConfig, error) {
	db := filepath.Join(cfg.DataDir, "db", "state.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return ETCDConfig{}, err
	}
	if err := migrateSchema(db, cfg.Fsyncs, cfg.Truth); err != nil {
		return ETCDConfig{}, fmt.Errorf("kine: %w", err)
	}
	sock := filepath.Join(cfg.DataDir, "kine.sock")
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return ETCDConfig{}, fmt.Errorf("kine: %w", err)
	}
	cfg.Truth.Write("listen", truth.Event{"component": "kine", "endpoint": "unix:" + sock, "t_ns": truth.Now()})
	fmt.Fprintf(os.Stderr, "kine: Kine available at unix://%s\n", sock)
	go serve(ctx, l)
	return ETCDConfig{Endpoint: sock}, nil
}

// migrateSchema is the sqlite part: n commits, each a page write and an fsync, the way a
// sqlite transaction in WAL mode ends (k3s issue reports: fsync latency on SD cards is what
// makes a node's first writes slow).
func migrateSchema(db string, n int, log *truth.Log) error {
	// one OS thread for the whole loop, so the tid logged is the tid that made the syscalls
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.OpenFile(db, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	page := make([]byte, 4096)
	for i := 0; i < n; i++ {
		for j := range page {
			page[j] = byte(i + j)
		}
		if _, err := f.WriteAt(page, int64(i)*int64(len(page))); err != nil {
			return err
		}
		start := truth.Now()
		err := f.Sync() // fsync(2)
		end := truth.Now()
		if err != nil {
			return err
		}
		log.Write("fsync", truth.Event{
			"component": "kine", "package": "github.com/k3s-io/kine/pkg/endpoint",
			"i": i, "path": db, "start_ns": start, "end_ns": end, "tid": truth.Tid(),
		})
	}
	return nil
}

// serve accepts and closes: the stand-in answers no etcd API, its socket is what matters
// (the apiserver's connect to it is a same-process wait in the trace).
func serve(ctx context.Context, l net.Listener) {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
