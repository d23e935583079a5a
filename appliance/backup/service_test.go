package backup

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
	"github.com/lawbox/appliance/appliance/state"
)

// versitygw is a real S3 server on 127.0.0.1 (github.com/versity/versitygw, installed by `make deps`),
// storing in dir.
type versitygw struct {
	dir, addr string
	cmd       *exec.Cmd
}

func startS3(t *testing.T, dir string) *versitygw {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("versitygw is not installed (make deps installs it)")
			}
			t.Skip("versitygw is not installed (make deps installs it)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := &versitygw{dir: dir, addr: addr}
	g.cmd = exec.Command(bin, "--port", addr, "posix", dir)
	g.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY=office-key", "ROOT_SECRET_KEY=office-secret-key")
	g.start(t)
	return g
}

func (g *versitygw) start(t *testing.T) {
	t.Helper()
	g.cmd = exec.Command(g.cmd.Path, g.cmd.Args[1:]...)
	g.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY=office-key", "ROOT_SECRET_KEY=office-secret-key")
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", g.addr); err == nil {
			c.Close()
			return
		}
		if i > 100 {
			t.Fatal("versitygw does not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *versitygw) stop() {
	if g.cmd.Process != nil && g.cmd.ProcessState == nil {
		g.cmd.Process.Kill()
		g.cmd.Wait()
	}
}

func (g *versitygw) target(bucket string) appliance.BackupTarget {
	return appliance.BackupTarget{Kind: "s3", Endpoint: g.addr, Bucket: bucket, AccessKey: "office-key", SecretKey: "office-secret-key", Insecure: true, Region: "us-east-1"}
}

// The service with a real S3 server: nothing before the recovery identity exists, the identity shown once,
// a target with a wrong key refused, a nightly dump copied offsite and verified from there; the target down
// for a while (the backup is kept locally, the failure reported, the copy made once it is back); a
// damaged object at the target found by verification; a full target reported.
func TestServiceWithS3(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE DATABASE practice")
	s.Exec(t, "practice", "CREATE TABLE matters (id int PRIMARY KEY, client text)", "INSERT INTO matters SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
	svc := newService(t, s)
	ctx := context.Background()

	identityAndRetention(t, ctx, svc)
	gw := startS3(t, t.TempDir())
	os.Mkdir(filepath.Join(gw.dir, "office"), 0o755) // the bucket
	bad := gw.target("office")
	bad.SecretKey = "wrong"
	if err := svc.SetTargets(ctx, []appliance.BackupTarget{bad}); !errors.Is(err, appliance.ErrBadInput) || !strings.Contains(err.Error(), "refuses the unit's credentials") {
		t.Errorf("a wrong secret key: %v", err)
	}
	if err := svc.SetTargets(ctx, []appliance.BackupTarget{gw.target("office")}); err != nil {
		t.Fatal(err)
	}
	b, err := svc.RunBackup(ctx, engine.KindDump)
	if err != nil {
		t.Fatal(err)
	}
	where := func(id string) []string {
		st, err := svc.Backups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range st.Backups {
			if x.ID == id {
				return x.Targets
			}
		}
		return nil
	}
	if got := where(b.ID); len(got) != 2 || !strings.HasPrefix(got[1], "s3://") {
		t.Fatalf("backup %s is on %v", b.ID, got)
	}
	v, err := svc.VerifyBackup(ctx, b.ID)
	if err != nil || !v.OK || !strings.HasPrefix(v.Target, "s3://") {
		t.Fatalf("verify from S3: %+v %v", v, err)
	}
	if st, _ := svc.Backups(ctx); st.LastVerified == nil || st.LastVerified.ID != b.ID {
		t.Errorf("last verified: %+v", st.LastVerified)
	}

	// The target is down: the backup is taken and kept locally, the failure reported; copied once back.
	gw.stop()
	time.Sleep(time.Second) // a second later: a new backup id
	inc, err := svc.RunBackup(ctx, engine.KindIncrement)
	if err != nil {
		t.Fatalf("a backup with the target down: %v", err)
	}
	if st, _ := svc.Backups(ctx); len(st.Targets) != 1 || st.Targets[0].OK || st.Targets[0].Error == "" || !strings.Contains(st.Targets[0].Problem, "cannot be reached") {
		t.Errorf("target status with the target down: %+v", st.Targets)
	}
	gw.start(t)
	svc.sync(ctx)
	if got := where(inc.ID); len(got) != 2 {
		t.Errorf("after the target came back, the increment is on %v", got)
	}
	if st, _ := svc.Backups(ctx); !st.Targets[0].OK {
		t.Errorf("target status once back: %+v", st.Targets)
	}

	// An object damaged at the target: verification says so.
	obj := filepath.Join(gw.dir, "office", b.ID, "practice.dump.zst.age")
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 1
	if err := os.WriteFile(obj, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if v, _ := svc.VerifyBackup(ctx, b.ID); v.OK || !strings.Contains(v.Detail, "damaged") {
		t.Errorf("verify a damaged object: %+v", v)
	}

	fullTargetSaid(t, ctx, svc)
}

// The schedule: the nightly dump once a day after 02:00 UTC, a base copy weekly, an increment 15 minutes
// after the last backup only when the WAL position moved (and the position asked only then).
func TestSchedule(t *testing.T) {
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	fresh := last{ID: "x", LSN: "0/3000000", Created: day.Add(9 * time.Hour), Dump: day.Add(2 * time.Hour), Base: day.Add(-24 * time.Hour)}
	for _, c := range []struct {
		name string
		l    last
		now  time.Time
		lsn  string
		want string
	}{
		{"before 02:00, dumped yesterday", last{Dump: day.Add(-22 * time.Hour), Base: day, Created: day.Add(-22 * time.Hour), LSN: "0/3000000"}, day.Add(time.Hour), "0/3000000", ""},
		{"after 02:00, dumped yesterday", last{Dump: day.Add(-22 * time.Hour), Base: day, Created: day}, day.Add(2*time.Hour + time.Minute), "", engine.KindDump},
		{"a week after the base copy", fresh, day.Add(6 * 24 * time.Hour).Add(2*time.Hour + time.Minute), "", engine.KindDump},
		{"base copy due", last{Dump: day.Add(2 * time.Hour), Base: day.Add(-7 * 24 * time.Hour), Created: day.Add(2 * time.Hour)}, day.Add(3 * time.Hour), "", engine.KindBase},
		{"10 minutes after, changed", fresh, fresh.Created.Add(10 * time.Minute), "0/4000000", ""},
		{"15 minutes after, unchanged", fresh, fresh.Created.Add(15 * time.Minute), "0/3000000", ""},
		{"15 minutes after, changed", fresh, fresh.Created.Add(15 * time.Minute), "0/4000000", engine.KindIncrement},
	} {
		asked := false
		got := c.l.due(c.now, func() (string, error) { asked = true; return c.lsn, nil })
		if got != c.want {
			t.Errorf("%s: due %q, want %q", c.name, got, c.want)
		}
		if asked && c.lsn == "" {
			t.Errorf("%s: the position was asked", c.name)
		}
	}
}

// The schedule does not decide while a backup the admin asked for is running: it waits and then sees it (a
// base copy requested by hand on a fresh unit was once followed by a second, scheduled one).
func TestScheduleWaitsForRunningBackup(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE DATABASE practice")
	s.Exec(t, "practice", "CREATE TABLE matters (id int PRIMARY KEY, client text)", "INSERT INTO matters SELECT g, md5(g::text) FROM generate_series(1, 200000) g")
	svc := newService(t, s)
	ctx := context.Background()
	if _, err := svc.CreateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	// Dumped yesterday, a base copy today: at 03:00 today the nightly dump is due.
	now := time.Now().UTC().Truncate(24 * time.Hour).Add(3 * time.Hour)
	if err := svc.Engine.Store.PutJSON(state.BucketConfig, lastKey, last{Dump: now.Add(-24 * time.Hour), Base: now}); err != nil {
		t.Fatal(err)
	}
	manual := make(chan error, 1)
	go func() {
		_, err := svc.RunBackup(ctx, engine.KindDump)
		manual <- err
	}()
	for i := 0; ; i++ {
		if b, _ := svc.Backups(ctx); b.Running != "" {
			break
		}
		if i == 1000 {
			t.Fatal("the manual dump never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, kind, err := svc.runDue(ctx, now)
	if err := <-manual; err != nil {
		t.Fatalf("manual dump: %v", err)
	}
	if kind == engine.KindDump {
		t.Errorf("the schedule took a second dump right after the one asked for by hand (%v)", err)
	}
}

// An offsite target with a limit uploads through the limiter.
func TestTargetWithLimit(t *testing.T) {
	lt := toTarget(appliance.BackupTarget{Kind: "sftp", LimitKBps: 100_000})
	if l, ok := lt.(target.Limited); !ok || l.Rate != 100_000_000 {
		t.Fatalf("a target with a limit of 100000 kB/s is %#v", lt)
	}
}

// fullTargetSaid: a full target (a 64 KiB file system behind the S3 server) is reported as full.
func fullTargetSaid(t *testing.T, ctx context.Context, svc *Service) {
	full := t.TempDir()
	if err := syscall.Mount("tmpfs", full, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("tmpfs: %v", err)
	}
	defer syscall.Unmount(full, syscall.MNT_DETACH)
	os.Mkdir(filepath.Join(full, "small"), 0o755)
	gw2 := startS3(t, full)
	if err := svc.SetTargets(ctx, []appliance.BackupTarget{gw2.target("small")}); err != nil {
		t.Fatal(err)
	}
	svc.sync(ctx)
	st2, _ := svc.Backups(ctx)
	if len(st2.Targets) != 1 || st2.Targets[0].OK {
		t.Fatalf("a full target reported as %+v", st2.Targets)
	}
	t.Logf("full target: %s", st2.Targets[0].Error)
	if !strings.Contains(st2.Targets[0].Problem, "full") {
		t.Errorf("a full target is said to be %q", st2.Targets[0].Problem)
	}
}

// identityAndRetention: nothing before the recovery identity exists; the identity is made once; retention is
// checked and kept in the cluster.
func identityAndRetention(t *testing.T, ctx context.Context, svc *Service) {
	if b, _ := svc.Backups(ctx); b.SetUp {
		t.Fatal("set up before any identity")
	}
	if _, err := svc.RunBackup(ctx, engine.KindDump); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("backup without an identity: %v", err)
	}
	if err := svc.SetRetention(ctx, appliance.BackupRetention{Daily: 14}); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("retention before set-up: %v", err)
	}
	ident, err := svc.CreateIdentity(ctx)
	if err != nil || !strings.HasPrefix(ident, "AGE-SECRET-KEY-") {
		t.Fatalf("identity %q %v", ident, err)
	}
	if _, err := svc.CreateIdentity(ctx); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("second identity: %v", err)
	}

	if st, _ := svc.Backups(ctx); st.Retention != (appliance.BackupRetention{Daily: 30}) {
		t.Errorf("default retention: %+v", st.Retention)
	}
	if err := svc.SetRetention(ctx, appliance.BackupRetention{Daily: 14, Weekly: 200}); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("200 weekly dumps: %v", err)
	}
	if err := svc.SetRetention(ctx, appliance.BackupRetention{Daily: 14, Weekly: 8, Monthly: 12}); err != nil {
		t.Fatal(err)
	}
	if st, _ := svc.Backups(ctx); st.Retention != (appliance.BackupRetention{Daily: 14, Weekly: 8, Monthly: 12}) {
		t.Errorf("retention kept in the cluster: %+v", st.Retention)
	}
}
