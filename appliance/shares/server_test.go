package shares

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// A stand-in for smbd records what it is told; the real one runs in the QEMU test (TestFileShares).
const standIn = `#!/bin/sh
log=$(dirname "$0")/calls
echo "start $0 $*" >> "$log"
echo $$ > "$(dirname "$0")/pid"
trap 'echo hup >> "$log"' HUP
trap 'echo term >> "$log"; exit 0' TERM
while :; do sleep 0.05; done
`

func TestServerFollowsServeAndReloads(t *testing.T) {
	dir := t.TempDir()
	smbd, passwd := standIns(t, dir)
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var serve atomic.Bool
	s := &Server{Log: slog.New(slog.DiscardHandler), Store: st, Dir: filepath.Join(dir, "documents"), RunDir: filepath.Join(dir, "run"),
		PrivateDir: filepath.Join(dir, "private"), Conf: filepath.Join(dir, "etc", "smb.conf"), Passwd: passwd,
		Smbd: smbd, Name: "UNIT", Every: 20 * time.Millisecond,
		Serve: func() (bool, string) {
			if serve.Load() {
				return true, ""
			}
			return false, "standby"
		},
		OwnerIDs: func() (int, int, error) { return os.Getuid(), os.Getgid(), nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	calls := func() string { b, _ := os.ReadFile(filepath.Join(dir, "calls")); return string(b) }
	wait := func(what string, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("waiting for %s; calls:\n%s\nstatus %+v", what, calls(), s.Shares(ctx))
			}
		}
	}
	wait("stopped", func() bool { st := s.Shares(ctx); return st.State == appliance.SharesStopped && st.Why == "standby" })
	if err := s.PutAccount(ctx, "marie", "a long password"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutShare(ctx, appliance.FileShare{Name: "Clients", ReadWrite: []string{"marie"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if calls() != "" {
		t.Fatalf("a unit that must not serve started the server: %s", calls())
	}
	// A folder of that name exists already (a documents restore made it): kept, with its files, and made
	// the share's.
	if err := os.MkdirAll(filepath.Join(dir, "documents", "Clients"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "documents", "Clients", "restored.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	serve.Store(true)
	wait("serving", func() bool {
		return s.Shares(ctx).State == appliance.SharesServing && strings.Contains(calls(), "start")
	})
	checkServed(t, dir, passwd, calls())
	if !s.Serving() {
		t.Error("serving, and Serving says no")
	}
	if err := os.WriteFile(filepath.Join(dir, "documents", "Clients", "contract.txt"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A change reaches the running server as a reload, not a restart.
	if err := s.PutShare(ctx, appliance.FileShare{Name: "Archive", ReadOnly: []string{"marie"}}); err != nil {
		t.Fatal(err)
	}
	wait("reload", func() bool { return strings.Contains(calls(), "hup") })
	if n := strings.Count(calls(), "start"); n != 1 {
		t.Errorf("restarted for a change: %s", calls())
	}
	// Deleting a share keeps its files.
	if err := s.DeleteShare(ctx, "clients"); err != nil {
		t.Fatal(err)
	}
	wait("second reload", func() bool { return strings.Count(calls(), "hup") == 2 })
	if b, err := os.ReadFile(filepath.Join(dir, "documents", "Clients", "contract.txt")); err != nil || string(b) != "kept" {
		t.Errorf("a deleted share's file: %q %v", b, err)
	}
	// The unit may no longer serve: the server is killed at once, never asked to finish what it does.
	pid, _ := os.ReadFile(filepath.Join(dir, "pid"))
	serve.Store(false)
	wait("stop", func() bool {
		n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
		return n > 0 && syscall.Kill(n, 0) == syscall.ESRCH && s.Shares(ctx).State == appliance.SharesStopped
	})
	if strings.Contains(calls(), "term") {
		t.Errorf("the server was asked to stop, not killed: %s", calls())
	}
	if s.Serving() {
		t.Error("killed, and Serving says yes: the documents' fencing would wait for ever")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The settings outlive the server: a new one reads them back.
	s2 := &Server{Store: st}
	if got := s2.Shares(ctx); len(got.Shares) != 1 || got.Shares[0].Name != "Archive" || len(got.Accounts) != 1 {
		t.Errorf("settings read back: %+v", got)
	}
}

// A server that stops as soon as it starts is started again after a wait that doubles, not every round.
func TestServerBacksOff(t *testing.T) {
	dir := t.TempDir()
	smbd := filepath.Join(dir, "smbd")
	if err := os.WriteFile(smbd, []byte("#!/bin/sh\necho start >> \"$(dirname \"$0\")/calls\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := &Server{Log: slog.New(slog.DiscardHandler), Store: st, Dir: filepath.Join(dir, "documents"), RunDir: filepath.Join(dir, "run"),
		PrivateDir: filepath.Join(dir, "private"), Conf: filepath.Join(dir, "smb.conf"), Passwd: passwd, Smbd: smbd, Every: 20 * time.Millisecond,
		Serve: func() (bool, string) { return true, "" }, OwnerIDs: func() (int, int, error) { return os.Getuid(), os.Getgid(), nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	sawFailed := false // while it waits to start the server again, the page says it stopped
	for ctx.Err() == nil {
		sawFailed = sawFailed || s.Shares(ctx).State == appliance.SharesFailed
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "calls"))
	// 20, 40, 80, 160, 320, 640 ms: about 6 starts in 1.5 s; every 20 ms would be about 70.
	if n := strings.Count(string(b), "start"); n < 2 || n > 9 {
		t.Errorf("%d starts in 1.5 s", n)
	}
	if !sawFailed {
		t.Error("the state never said the server stopped")
	}
}

// A process that has not installed a SIGHUP handler (smbd just started) would die of one: it is not sent.
func TestCatches(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if catches(cmd.Process.Pid, syscall.SIGHUP) {
		t.Error("sleep said to handle SIGHUP")
	}
	trap := exec.Command("sh", "-c", "trap 'echo hup' HUP; echo ready; while :; do sleep 0.05; done")
	out, err := trap.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := trap.Start(); err != nil {
		t.Fatal(err)
	}
	defer trap.Process.Kill()
	if _, err := out.Read(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	if !catches(trap.Process.Pid, syscall.SIGHUP) {
		t.Error("a shell with a HUP trap said not to handle SIGHUP")
	}
}

// checkServed: started in the foreground with its configuration; the share in smb.conf; Samba finds the
// account in the Unix accounts and its hash in smbpasswd (readable by root only); the share's folder made,
// with the files already in it kept.
func checkServed(t *testing.T, dir, passwd, calls string) {
	if !strings.Contains(calls, "--foreground --no-process-group --debug-stdout --configfile="+filepath.Join(dir, "etc", "smb.conf")) {
		t.Errorf("started as %q", calls)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "etc", "smb.conf"))
	if !strings.Contains(string(conf), "[Clients]") {
		t.Errorf("smb.conf:\n%s", conf)
	}
	if b, _ := os.ReadFile(passwd); string(b) != "root:x:0:0:root:/root:/bin/sh\nmarie:x:20000:"+strconv.Itoa(os.Getgid())+":file account:/nonexistent:/bin/false\n" {
		t.Errorf("passwd:\n%s", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "run", "smbpasswd")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("smbpasswd: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "documents", "Clients")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o770 {
		t.Errorf("the share's folder: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "documents", "Clients", "restored.txt")); err != nil || string(b) != "old" {
		t.Errorf("a file already in the folder: %q %v", b, err)
	}
}

// standIns writes the stand-in smbd (standIn) and a passwd file with root alone.
func standIns(t *testing.T, dir string) (smbd, passwd string) {
	smbd = filepath.Join(dir, "smbd")
	if err := os.WriteFile(smbd, []byte(standIn), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd = filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return smbd, passwd
}

// The accounts are sealed in the state store (state.SealBuckets) until the data array is open: the server
// waits, says why, refuses changes, and starts once the key is given.
func TestServerWaitsForSealedAccounts(t *testing.T) {
	dir := t.TempDir()
	smbd, passwd := standIns(t, dir)
	path := filepath.Join(dir, "state.db")
	key := make([]byte, state.SealKeySize)
	st, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st.SealBuckets(state.BucketShares)
	if err := errors.Join(st.Seal(), st.Unseal(key)); err != nil {
		t.Fatal(err)
	}
	first := &Server{Store: st}
	if err := first.PutAccount(t.Context(), "marie", "a long password"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st, err = state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SealBuckets(state.BucketShares)
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Log: slog.New(slog.DiscardHandler), Store: st, Dir: filepath.Join(dir, "documents"), RunDir: filepath.Join(dir, "run"),
		PrivateDir: filepath.Join(dir, "private"), Conf: filepath.Join(dir, "etc", "smb.conf"), Passwd: passwd,
		Smbd: smbd, Name: "UNIT", Every: 20 * time.Millisecond, Serve: func() (bool, string) { return true, "" },
		OwnerIDs: func() (int, int, error) { return os.Getuid(), os.Getgid(), nil }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	calls := func() string { b, _ := os.ReadFile(filepath.Join(dir, "calls")); return string(b) }
	time.Sleep(200 * time.Millisecond)
	if got := s.Shares(ctx); got.State != appliance.SharesStopped || got.Why != sealedWhy || calls() != "" {
		t.Fatalf("sealed: %+v, calls %q", got, calls())
	}
	if err := s.PutAccount(ctx, "paul", "another long password"); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a change while sealed = %v, want a conflict", err)
	}
	if err := st.Unseal(key); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); s.Shares(ctx).State != appliance.SharesServing; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not serving once unsealed: %+v, calls %q", s.Shares(ctx), calls())
		}
	}
	if b, err := os.ReadFile(passwd); err != nil || !strings.Contains(string(b), "marie:") {
		t.Errorf("the accounts given to Samba once unsealed: %q %v", b, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
