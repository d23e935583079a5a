package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
)

// A unit whose array stopped taking the backups (it became production) has a base copy but WAL that ends
// early: the point-in-time restore goes on with the target, whose WAL reaches the moment.
func TestPointInTimeFallsBackToTarget(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE DATABASE practice")
	s.Exec(t, "practice", "CREATE TABLE matters (id int PRIMARY KEY)", "INSERT INTO matters SELECT generate_series(1, 100)")
	svc := newService(t, s)
	ctx := context.Background()
	if _, err := svc.CreateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	gw := startS3(t, t.TempDir())
	os.Mkdir(filepath.Join(gw.dir, "office"), 0o755)
	if err := svc.SetTargets(ctx, []appliance.BackupTarget{gw.target("office")}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RunBackup(ctx, engine.KindBase); err != nil { // copied offsite with its WAL
		t.Fatal(err)
	}
	// The array stops here; the target goes on receiving WAL.
	local, _ := svc.Engine.Local.List(ctx)
	s.Exec(t, "practice", "INSERT INTO matters SELECT generate_series(101, 200)")
	var before time.Time
	c, _ := s.Connect("practice")
	c.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&before)
	c.Close(ctx)
	time.Sleep(1200 * time.Millisecond)
	s.Exec(t, "practice", "DELETE FROM matters")
	s.ArchiveNow(t)
	if _, err := svc.Engine.ShipWAL(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Engine.CopyWAL(ctx, toTarget(gw.target("office"))); err != nil {
		t.Fatal(err)
	}
	had := map[string]bool{}
	for _, k := range local {
		had[k] = true
	}
	now, _ := svc.Engine.Local.List(ctx)
	for _, k := range now {
		if strings.HasPrefix(k, engine.WALPrefix) && !had[k] {
			svc.Engine.Local.Delete(ctx, k)
		}
	}
	res, err := svc.RestorePointInTime(ctx, before, appliance.BackupRestore{Databases: []string{"practice"}, Into: "practice_then"})
	if err != nil || !strings.HasPrefix(res.Target, "s3://") || len(res.Databases) != 1 || res.Databases[0].Rows != 200 {
		t.Fatalf("point in time with the array's WAL ending early: %+v %v", res, err)
	}
}
