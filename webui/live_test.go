package webui

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// readEvent reads one server-sent event (skipping keepalive comments): its name and its data.
func readEvent(t *testing.T, r *bufio.Reader) (string, string) {
	t.Helper()
	var name, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v (so far %q %q)", err, name, data)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// readLive reads a "live" event and returns its section's HTML.
func readLive(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	name, data := readEvent(t, r)
	var h string
	if name != "live" || json.Unmarshal([]byte(data), &h) != nil {
		t.Fatalf("event %q %q, want live with a JSON string", name, data)
	}
	return h
}

// openEvents opens the dashboard's event stream with tok, through a real HTTP server (query: "" or
// "?part=...").
func openEvents(t *testing.T, e *env, tok string, query ...string) *bufio.Reader {
	t.Helper()
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	rq, _ := http.NewRequest("GET", srv.URL+"/api/v1/events"+strings.Join(query, ""), nil)
	rq.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() }) // before the server's Close, which waits for the stream
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return bufio.NewReader(resp.Body)
}

// The dashboard stream sends the dashboard at once, again when something changes (a rebuild moves on),
// and "end" when the session is logged out.
func TestLiveDashboard(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	r := openEvents(t, e, tok)
	html := func() string { return readLive(t, r) }
	first := html()
	for _, want := range []string{"summary-red", "37.5 %", "SN-OLD", "waiting for an admin to take it in", "replace", `<a href="/storage">the data array is rebuilding</a>`} {
		if !strings.Contains(first, want) {
			t.Errorf("first dashboard lacks %q:\n%s", want, first)
		}
	}
	start := time.Now()
	e.storage.change(func(st *appliance.StorageStatus) {
		half := 0.5
		st.Arrays = append([]appliance.Array(nil), st.Arrays...) // the server may still read the old one
		st.Arrays[0].RebuildProgress = &half
	})
	if h := html(); !strings.Contains(h, "50.0 %") {
		t.Errorf("after the rebuild moved on:\n%s", h)
	}
	t.Logf("change seen after %v", time.Since(start))
	if err := e.auth.Logout(tok); err != nil {
		t.Fatal(err)
	}
	if name, _ := readEvent(t, r); name != "end" {
		t.Errorf("after logout: event %q, want end", name)
	}
}

// The storage page's arrays come by the same stream: a rebuild moves on in place, without reloading the
// page (which once re-sent the form that had loaded it).
func TestLiveStorage(t *testing.T) {
	e := newEnv(t)
	r := openEvents(t, e, e.setUpAndLogin(t), "?part=storage")
	html := func() string { return readLive(t, r) }
	if h := html(); !strings.Contains(h, `<progress max="100" value="37.5">`) || strings.Contains(h, "summary") {
		t.Errorf("first storage section:\n%s", h)
	}
	e.storage.change(func(st *appliance.StorageStatus) {
		half := 0.5
		st.Arrays = append([]appliance.Array(nil), st.Arrays...)
		st.Arrays[0].RebuildProgress = &half
	})
	if h := html(); !strings.Contains(h, `<progress max="100" value="50.0">`) {
		t.Errorf("after the rebuild moved on:\n%s", h)
	}
}

// fresh reads once per second at most, and once it has a value nobody waits for a slow reading.
func TestFresh(t *testing.T) {
	var f fresh[int]
	calls := 0
	release := make(chan struct{})
	slow := false
	compute := func(context.Context) (int, error) {
		calls++
		if slow {
			<-release
		}
		return calls, nil
	}
	ctx := context.Background()
	if v, _ := f.get(ctx, compute); v != 1 {
		t.Fatalf("first = %d", v)
	}
	if v, _ := f.get(ctx, compute); v != 1 || calls != 1 {
		t.Fatalf("within a second: %d (calls %d)", v, calls)
	}
	time.Sleep(freshFor + 50*time.Millisecond)
	slow = true
	start := time.Now()
	if v, _ := f.get(ctx, compute); v != 1 || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("stale read: %d after %v, want the old value at once", v, time.Since(start))
	}
	if v, _ := f.get(ctx, compute); v != 1 {
		t.Fatalf("while reading: %d", v)
	}
	close(release)
	waitUntil(t, func() bool { v, _ := f.get(ctx, compute); return v == 2 })
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("timed out")
		}
	}
}

// Close ends open event streams, so that the server's shutdown does not wait for them.
func TestCloseEndsStreams(t *testing.T) {
	e := newEnv(t)
	r := openEvents(t, e, e.setUpAndLogin(t))
	readEvent(t, r)
	e.srv.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stream after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream is still open 10 s after Close")
	}
}
