package drbd

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// primary-alone and connected are /proc/drbd as the units in QEMU printed it (TestFileShares, and a pair's
// standby after its first synchronisation); syncsource follows the layout DRBD 8.4 prints during one (its
// progress lines), written by hand: no capture of a resynchronisation in progress yet.
func TestParseProc(t *testing.T) {
	for _, c := range []struct {
		file                             string
		conn, role, peer, disk, peerDisk string
		oos                              int64
		synced                           float64 // -1: none
	}{
		{"testdata/primary-alone", "StandAlone", "Primary", "Unknown", "UpToDate", "Outdated", 73688 << 10, -1},
		{"testdata/syncsource", "SyncSource", "Primary", "Secondary", "UpToDate", "Inconsistent", 51200 << 10, 16.7},
		{"testdata/connected", "Connected", "Secondary", "Secondary", "UpToDate", "UpToDate", 0, -1},
	} {
		b, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		st, err := parseProc(b, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !st.Configured || st.Connection != c.conn || st.Role != c.role || st.PeerRole != c.peer || st.Disk != c.disk || st.PeerDisk != c.peerDisk || st.OutOfSync != c.oos {
			t.Errorf("%s: %+v", c.file, st)
		}
		if (c.synced < 0) != (st.Synced == nil) || st.Synced != nil && *st.Synced != c.synced {
			t.Errorf("%s: synced %v, want %v", c.file, st.Synced, c.synced)
		}
		// Another minor's line is not this one's.
		if other, err := parseProc(b, 1); err != nil || other.Configured {
			t.Errorf("%s minor 1: %+v %v", c.file, other, err)
		}
	}
	if _, err := parseProc([]byte(" 0: cs:Connected\n"), 0); err == nil {
		t.Error("a line without role or disk was read")
	}
	if _, err := (&DRBD{Proc: t.TempDir() + "/none"}).State(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no /proc/drbd: %v", err)
	}
}

func TestArgv(t *testing.T) {
	var calls []string
	d := &DRBD{Setup: "/sbin/drbdsetup", Meta: "/sbin/drbdmeta", Resource: "documents", Minor: 0, Proc: t.TempDir() + "/none",
		Run: func(_ context.Context, argv ...string) ([]byte, error) {
			calls = append(calls, strings.Join(argv, " "))
			return nil, nil
		}}
	ctx := context.Background()
	p := Peer{Local: "198.51.100.10:7789", Remote: "198.51.100.11:7789", Secret: "s3cr3t"}
	if err := d.CreateMetadata(ctx, "/dev/lawbox/documents"); err != nil {
		t.Fatal(err)
	}
	if err := d.Up(ctx, "/dev/lawbox/documents"); err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := d.Primary(ctx, false); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/sbin/drbdmeta --force 0 v08 /dev/lawbox/documents internal create-md",
		"/sbin/drbdsetup new-resource documents --on-no-data-accessible suspend-io",
		"/sbin/drbdsetup new-minor documents 0 0",
		"/sbin/drbdmeta --force 0 v08 /dev/lawbox/documents internal apply-al",
		"/sbin/drbdsetup attach 0 /dev/lawbox/documents /dev/lawbox/documents internal --on-io-error detach --c-plan-ahead 0 --resync-rate 40M",
		"/sbin/drbdsetup connect documents ipv4:198.51.100.10:7789 ipv4:198.51.100.11:7789 --protocol C --cram-hmac-alg sha256 --shared-secret s3cr3t " +
			"--after-sb-0pri disconnect --after-sb-1pri disconnect --after-sb-2pri disconnect --rr-conflict disconnect --ping-timeout 10 --connect-int 3",
		"/sbin/drbdsetup primary 0",
	}
	if !slices.Equal(calls, want) {
		t.Errorf("argv\n got %q\nwant %q", calls, want)
	}
	// After a split nothing is discarded by DRBD itself.
	for _, c := range calls {
		if strings.Contains(c, "discard") {
			t.Errorf("%s discards data", c)
		}
	}
}
