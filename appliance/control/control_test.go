package control

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/supervise"
)

func TestClientServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "init.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan bool, 1)
	passed := make(chan struct{}, 1)
	srv := &http.Server{Handler: Handler(
		func() []supervise.Status { return []supervise.Status{{Name: "daemon", State: "running", Restarts: 2}} },
		func(reboot bool) { got <- reboot }, func() { passed <- struct{}{} })}
	go srv.Serve(l)
	defer srv.Close()

	c := NewClient(sock)
	svcs, err := c.Services(context.Background())
	if err != nil || len(svcs) != 1 || svcs[0].Name != "daemon" || svcs[0].Restarts != 2 {
		t.Fatalf("Services() = %+v, %v", svcs, err)
	}
	if err := c.Shutdown(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if !r {
			t.Error("Shutdown(reboot) reached init as power off")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("init never got the shutdown request")
	}
	if err := c.TrialPassed(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-passed:
	default:
		t.Error("init was not told the trial passed")
	}
}
