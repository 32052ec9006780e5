// Command server is gok3s, a k3s-shaped STAND-IN for `k3s server` (it is NOT k3s): one Go
// process whose components are goroutines under k3s's real import paths, started in the order
// k3s v1.32.4+ starts them (docs/k3s-startup.md §2.1), each doing one piece of planted
// work whose truth it writes to a JSON-lines log on CLOCK_MONOTONIC (docs/gok3s.md):
//
//	kine            github.com/k3s-io/kine/pkg/endpoint      (d) writes + fsyncs, then listens on kine.sock
//	kubelet         k8s.io/kubernetes/pkg/kubelet            (b) polls the apiserver's /readyz (same process)
//	k3s             github.com/k3s-io/k3s/pkg/agent/syssetup     exec `modprobe --dry-run -- overlay`
//	kube-apiserver  k8s.io/apiserver/pkg/server              (a) listens, then a CPU stretch before /readyz is 200
//	flannel         github.com/flannel-io/flannel/pkg/...    (c) exec `iptables --version` once the API is ready
//	k3s             main                                     "k3s is up and running", READY=1
//
// It exits 0 when every component is done (after --hold), 1 on a failure.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	"github.com/k3s-io/k3s/pkg/agent/syssetup"
	"github.com/k3s-io/kine/pkg/endpoint"
	"k3sprof.invalid/truth"
	"k8s.io/apiserver/pkg/server"
	"k8s.io/kubernetes/pkg/kubelet"
)

type options struct {
	dataDir      string
	truthPath    string
	apiserver    string
	kubeletAddr  string
	pollInterval time.Duration
	hookCPU      time.Duration
	fsyncs       int
	iptables     string
	modprobe     string
	notifySocket string
	hold         time.Duration
	timeout      time.Duration
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.dataDir, "data-dir", "", "k3s server dir (kine.sock, db/); default: a temp dir removed at exit")
	flag.StringVar(&o.truthPath, "truth", os.Getenv("GOK3S_TRUTH"), "truth log (JSON lines); env GOK3S_TRUTH")
	flag.StringVar(&o.apiserver, "apiserver-addr", "127.0.0.1:6444", "kube-apiserver secure port (host:port)")
	flag.StringVar(&o.kubeletAddr, "kubelet-addr", "127.0.0.1:10250", "kubelet port (host:port)")
	flag.DurationVar(&o.pollInterval, "poll-interval", 100*time.Millisecond, "kubelet's /readyz poll interval")
	flag.DurationVar(&o.hookCPU, "hook-cpu", 300*time.Millisecond, "thread CPU time of the apiserver's post-start hook")
	flag.IntVar(&o.fsyncs, "fsyncs", 20, "kine's commits (write + fsync) before it listens")
	flag.StringVar(&o.iptables, "iptables", "iptables", "iptables binary flannel execs with --version")
	flag.StringVar(&o.modprobe, "modprobe", "modprobe", "modprobe binary the agent execs with --dry-run")
	flag.StringVar(&o.notifySocket, "notify-socket", "", "unix datagram socket to send READY=1 to (like sd_notify)")
	flag.DurationVar(&o.hold, "hold", 0, "stay up this long after ready")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up waiting for the API server after this")
	flag.Parse()
	return o
}

func main() {
	o := parseFlags()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "k3s: error: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	log, err := truth.Open(o.truthPath)
	if err != nil {
		return err
	}
	defer log.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.dataDir == "" {
		if o.dataDir, err = os.MkdirTemp("", "gok3s-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dataDir)
	}
	log.Write("start", truth.Event{
		"component": "k3s", "pid": os.Getpid(), "go": runtime.Version(), "t_ns": truth.Now(),
		"clock": "CLOCK_MONOTONIC",
	})
	fmt.Fprintf(os.Stderr, "k3s: Starting k3s v0.0.0+gok3s (a stand-in, not k3s; %s) pid %d\n", runtime.Version(), os.Getpid())

	// prepare: the datastore first (kine with sqlite starts inside server.PrepareServer)
	etcd, err := endpoint.Listen(ctx, endpoint.Config{DataDir: o.dataDir, Fsyncs: o.fsyncs, Truth: log})
	if err != nil {
		return err
	}

	// the agent: its readiness poller starts at once (executor.Bootstrap), then kernel modules
	kcfg := kubelet.Config{
		APIServerReadyz: "http://" + o.apiserver + "/readyz", Interval: o.pollInterval,
		Timeout: o.timeout, Address: o.kubeletAddr, Truth: log,
	}
	apiReady := make(chan error, 1)
	go func() { apiReady <- kubelet.WaitForAPIServer(ctx, kcfg) }()
	syssetup.Configure(o.modprobe, []string{"overlay"}, log)

	// the control plane: kube-apiserver on its own goroutine (executor.APIServer)
	apiserver := server.New(server.Config{
		BindAddress: o.apiserver, StorageEndpoint: etcd.Endpoint, HookCPU: o.hookCPU, Truth: log,
	})
	apiDone := make(chan error, 1)
	go func() { apiDone <- apiserver.PrepareRun(ctx) }()

	// everything below waits for APIServerReady, as in k3s
	apiFinished := false
	select {
	case err = <-apiReady:
	case err = <-apiDone: // the apiserver's hooks ended (or it failed) before the poll noticed
		apiFinished = true
		if err == nil {
			err = <-apiReady
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "k3s: Kube API server is now running")
	network := make(chan error, 1)
	go func() { // startNetwork: flannel
		m := &iptables.IPTablesManager{Binary: o.iptables, Truth: log}
		network <- m.Init()
	}()
	if err := kubelet.ListenAndServeKubeletServer(ctx, kcfg); err != nil {
		return err
	}
	up := truth.Now()
	fmt.Fprintln(os.Stderr, "k3s: k3s is up and running")
	log.Write("up", truth.Event{"component": "k3s", "t_ns": up})
	fmt.Println("READY=1") // the sd_notify line, on stdout for anyone reading it
	if o.notifySocket != "" {
		if err := notify(o.notifySocket); err != nil {
			return err
		}
	}
	if err := <-network; err != nil {
		return err
	}
	if !apiFinished {
		if err := <-apiDone; err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("stopped by a signal")
	case <-time.After(o.hold):
	}
	log.Write("exit", truth.Event{"component": "k3s", "t_ns": truth.Now()})
	return nil
}

// notify sends READY=1 the way sd_notify does: one datagram to a unix socket.
func notify(path string) error {
	c, err := net.Dial("unixgram", path)
	if err != nil {
		return fmt.Errorf("notify %s: %w", path, err)
	}
	defer c.Close()
	_, err = c.Write([]byte("READY=1"))
	return err
}
