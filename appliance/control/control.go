// Package control is the private channel between PID 1 and the appliance daemon: a small HTTP API on a
// unix socket that only root can open. PID 1 serves it (service states and logs, power off, reboot); the
// daemon is its client. It carries no user input beyond the two power actions.
package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/lawbox/appliance/appliance/supervise"
)

// DefaultSocket is where PID 1 listens.
const DefaultSocket = "/run/appliance/init.sock"

// Handler serves the control API: GET /services, POST /poweroff, POST /reboot, and POST /trial/passed
// (the firmware on trial became healthy: PID 1 no longer restarts the unit at the trial's deadline).
func Handler(services func() []supervise.Status, shutdown func(reboot bool), passed func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /services", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(services())
	})
	mux.HandleFunc("POST /poweroff", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		go shutdown(false)
	})
	mux.HandleFunc("POST /reboot", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		go shutdown(true)
	})
	mux.HandleFunc("POST /trial/passed", func(w http.ResponseWriter, r *http.Request) {
		passed()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// Client talks to PID 1.
type Client struct {
	hc *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{hc: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Services returns the supervised services' states and recent logs.
func (c *Client) Services(ctx context.Context) ([]supervise.Status, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://init/services", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask init for services: %w", err)
	}
	defer resp.Body.Close()
	var out []supervise.Status
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode init services: %w", err)
	}
	return out, nil
}

// Shutdown asks PID 1 to power off, or reboot.
func (c *Client) Shutdown(ctx context.Context, reboot bool) error {
	if reboot {
		return c.post(ctx, "reboot", http.StatusAccepted)
	}
	return c.post(ctx, "poweroff", http.StatusAccepted)
}

// TrialPassed tells PID 1 the firmware on trial is healthy and kept.
func (c *Client) TrialPassed(ctx context.Context) error {
	return c.post(ctx, "trial/passed", http.StatusNoContent)
}

func (c *Client) post(ctx context.Context, path string, want int) error {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://init/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("ask init to %s: %w", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("ask init to %s: %s", path, resp.Status)
	}
	return nil
}
