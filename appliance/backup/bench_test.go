package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBackup dumps a generated database (about 150 MB) with the Engine and, in the same run, with the
// raw pipeline it is compared to: pg_dump --format=custom --compress=0 | zstd -3 | age, the Debian tools
// piped together. It reports both throughputs (database bytes per second), their ratio (goal >= 0.8) and the
// time to verify the backup by a full restore.
func BenchmarkBackup(b *testing.B) {
	s := startServer(b)
	s.exec(b, "postgres", "CREATE DATABASE practice")
	s.exec(b, "practice", "CREATE TABLE matters (id int PRIMARY KEY, client text, notes text)",
		"INSERT INTO matters SELECT g, 'client ' || g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g", "VACUUM ANALYZE matters")
	c, err := s.connect("practice")
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	c.QueryRow(context.Background(), "SELECT pg_database_size('practice')").Scan(&size)
	c.Close(context.Background())
	local := Dir{Path: b.TempDir()}
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
		mbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
		b.ReportMetric(mbs(engine), "MB/s-engine")
		b.ReportMetric(mbs(raw), "MB/s-raw-pipeline")
		b.ReportMetric(raw.Seconds()/engine.Seconds(), "ratio")
		b.ReportMetric(v.Seconds, "s/verify-restore")
		b.Logf("database %d MB: engine %v (%.1f MB/s, %d MB stored), raw pg_dump|zstd|age %v (%.1f MB/s): ratio %.2f (goal >= 0.8); verify by restore %.1f s",
			size>>20, engine, mbs(engine), m.SizeBytes()>>20, raw, mbs(raw), raw.Seconds()/engine.Seconds(), v.Seconds)
	}
}

// rawPipeline runs pg_dump | zstd -3 | age into a file and returns how long it took.
func rawPipeline(b *testing.B, s *hostServer, recipient string) time.Duration {
	start := time.Now()
	out, err := os.Create(filepath.Join(b.TempDir(), "raw.age"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	dump := exec.Command(filepath.Join(pgBin, "pg_dump"), "--format=custom", "--compress=0", "-h", s.dir, "-p", strconv.Itoa(s.port), "-U", "postgres", "-d", "practice")
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
