package database

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
)

// A mirror whose server stops abruptly (every process killed at once, as a power cut does) recovers its
// own copy and streams again: it is not copied again in full (pg_rewind's own recovery refuses a standby,
// and every mirror that lost power used to be copied anew), and it has the rows committed meanwhile.
func TestMirrorAfterAPowerCut(t *testing.T) {
	portA, portB := freePort(t), freePort(t)
	a := startHostUnit(t, "a", portA, portB, "active")
	b := startHostUnit(t, "b", portB, portA, "standby")
	ctx := context.Background()
	a.waitStatus(t, "a production", func(s appliance.DatabaseStatus) bool { return s.Role == production })
	nd, err := a.CreateDatabase(ctx, "practice", "practice_app")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, nd.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE TABLE matters (id int PRIMARY KEY); INSERT INTO matters SELECT generate_series(1, 1000)"); err != nil {
		t.Fatal(err)
	}
	mirrors := func(s appliance.DatabaseStatus) bool {
		return s.Role == mirror && s.State == "running" && strings.HasPrefix(s.Upstream, "partner unit")
	}
	b.waitStatus(t, "b mirrors a", mirrors)
	waitFor(t, time.Minute, "rows on the mirror", func() error {
		if n, err := count(ctx, at(nd.URL, portB)); err != nil || n != 1000 {
			return fmt.Errorf("%d rows (%v)", n, err)
		}
		return nil
	})
	// A file of the copy's own: a copy made again would not have it.
	marker := filepath.Join(b.DataDir, "lawbox-test-marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pid, err := os.ReadFile(filepath.Join(b.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.SplitN(string(pid), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil { // the server and every process of its group
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO matters SELECT generate_series(1001, 1100)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "the mirror back with the rows committed meanwhile", func() error {
		if n, err := count(ctx, at(nd.URL, portB)); err != nil || n != 1100 {
			return fmt.Errorf("%d rows (%v), state %s", n, err, b.stateNow())
		}
		return nil
	})
	b.waitStatus(t, "b mirrors a again", mirrors)
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the mirror was copied again in full after an abrupt stop: %v", err)
	}
}
