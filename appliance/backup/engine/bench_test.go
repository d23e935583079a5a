package engine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
)

// BenchmarkBackup dumps a generated database (about 150 MB) with the Engine and, in the same run, with the
// raw pipeline it is compared to: pg_dump --format=custom --compress=0 | zstd -3 | age, the Debian tools
// piped together. It reports both throughputs (database bytes per second), their ratio (goal >= 0.8) and the
// time to verify the backup by a full restore.
func BenchmarkBackup(b *testing.B) {
	s := pgtest.Start(b)
	s.Exec(b, "postgres", "CREATE DATABASE practice")
	s.Exec(b, "practice", "CREATE TABLE matters (id int PRIMARY KEY, client text, notes text)",
		"INSERT INTO matters SELECT g, 'client ' || g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g", "VACUUM ANALYZE matters")
	c, err := s.Connect("practice")
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	c.QueryRow(context.Background(), "SELECT pg_database_size('practice')").Scan(&size)
	c.Close(context.Background())
	local := target.Dir{Path: b.TempDir()}
	e := newEngine(b, s, local)
	id, _ := e.Identity()
	ctx := context.Background()
	rawPipeline(b, s, id.Recipient().String()) // warm the caches for both
	for range b.N {
		start := time.Now()
		m, err := e.Backup(ctx, KindDump)
		if err != nil {
			b.Fatal(err)
		}
		engine := time.Since(start)

		raw := rawPipeline(b, s, id.Recipient().String())

		v, err := e.Verify(ctx, local, m.ID)
		if err != nil {
			b.Fatal(err)
		}
		// The physical side: the engine's base copy (pg_basebackup | zstd | age) beside Debian's pgBackRest
		// (full backup, zstd level 3, AES-256 repository) of the same cluster.
		start = time.Now()
		if _, err := e.Backup(ctx, KindBase); err != nil {
			b.Fatal(err)
		}
		base := time.Since(start)
		pgbr := pgBackRest(b, s)
		start = time.Now()
		rs, err := e.Restore(ctx, local, m.ID, []string{"practice"}, "practice_restored", false)
		if err != nil || len(rs) != 1 {
			b.Fatal(rs, err)
		}
		restore := time.Since(start)
		s.Exec(b, "postgres", "DROP DATABASE practice_restored")
		mbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
		b.ReportMetric(mbs(engine), "MB/s-engine")
		b.ReportMetric(mbs(raw), "MB/s-raw-pipeline")
		b.ReportMetric(raw.Seconds()/engine.Seconds(), "ratio")
		b.ReportMetric(base.Seconds(), "s/base-copy")
		b.ReportMetric(pgbr.Seconds(), "s/pgbackrest-full")
		b.ReportMetric(pgbr.Seconds()/base.Seconds(), "ratio-pgbackrest-vs-base")
		b.ReportMetric(v.Seconds, "s/verify-restore")
		b.ReportMetric(restore.Seconds(), "s/restore-into-production")
		b.Logf("database %d MB: engine %v (%.1f MB/s, %d MB stored), raw pg_dump|zstd|age %v (%.1f MB/s): ratio %.2f (goal >= 0.8); base copy %v beside pgBackRest full %v (ratio %.2f); verify by restore %.1f s; restore into production %.1f s",
			size>>20, engine, mbs(engine), m.SizeBytes()>>20, raw, mbs(raw), raw.Seconds()/engine.Seconds(), base, pgbr, pgbr.Seconds()/base.Seconds(), v.Seconds, restore.Seconds())
	}
}

// rawPipeline runs pg_dump | zstd -3 | age into a file and returns how long it took.
func rawPipeline(b *testing.B, s *pgtest.Server, recipient string) time.Duration {
	start := time.Now()
	out, err := os.Create(filepath.Join(b.TempDir(), "raw.age"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	dump := exec.Command(filepath.Join(pgtest.BinDir, "pg_dump"), "--format=custom", "--compress=0", "-h", s.Dir, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", "practice")
	zstd := exec.Command("zstd", "-q", "-3", "-c")
	enc := exec.Command("age", "-r", recipient)
	zstd.Stdin, _ = dump.StdoutPipe()
	enc.Stdin, _ = zstd.StdoutPipe()
	enc.Stdout = out
	for _, c := range []*exec.Cmd{dump, zstd, enc} {
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []*exec.Cmd{dump, zstd, enc} {
		if err := c.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// pgBackRest takes a full backup of s with Debian's pgBackRest (zstd 3, an encrypted repository, a fast
// checkpoint) and returns how long the backup took (not the stanza's creation).
func pgBackRest(b *testing.B, s *pgtest.Server) time.Duration {
	bin, err := exec.LookPath("pgbackrest")
	if err != nil {
		b.Skip("pgbackrest is not installed (make deps installs it)")
	}
	dir := filepath.Join(s.Dir, "pgbackrest")
	conf := filepath.Join(dir, "pgbackrest.conf")
	os.MkdirAll(filepath.Join(dir, "repo"), 0o700)
	text := "[global]\nrepo1-path=" + dir + "/repo\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=bench-only-passphrase\n" +
		"compress-type=zst\ncompress-level=3\nstart-fast=y\narchive-check=n\nlog-path=" + dir + "\nlock-path=" + dir + "\nlog-level-console=warn\n" +
		"[practice]\npg1-path=" + s.Dir + "/data\npg1-socket-path=" + s.Dir + "\npg1-port=" + strconv.Itoa(s.Port) + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
		b.Fatalf("chown: %v %s", err, out)
	}
	run := func(args ...string) {
		c := exec.Command("runuser", append([]string{"-u", "postgres", "--", bin, "--config=" + conf, "--stanza=practice"}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("pgbackrest %v: %v %s", args, err, out)
		}
	}
	run("stanza-create")
	start := time.Now()
	run("backup", "--type=full")
	return time.Since(start)
}
