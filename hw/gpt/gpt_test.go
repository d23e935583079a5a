package gpt

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sample(size int64) Table {
	_, last := Geometry(size, 512)
	return Table{SectorSize: 512, DiskGUID: "11223344-5566-4788-99AA-BBCCDDEEFF00", Partitions: []Partition{
		{Type: TypeLinuxXBootLdr, Name: "boot", First: 2048, Last: 4095},
		{Type: TypeLinuxRAID, Name: "système", First: 4096, Last: 8191, GUID: "0A0B0C0D-0E0F-4011-8213-141516171819"},
		{Type: TypeLinuxRAID, Name: "data", First: 8192, Last: last},
	}}
}

func diskFile(t *testing.T, size int64) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRoundTripAndBackup(t *testing.T) {
	const size = 16 << 20
	f := diskFile(t, size)
	want := sample(size)
	if err := Write(f, size, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(f, size, 512)
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskGUID != want.DiskGUID || len(got.Partitions) != 3 {
		t.Fatalf("read %+v", got)
	}
	for i, p := range got.Partitions {
		w := want.Partitions[i]
		if p.Type != w.Type || p.Name != w.Name || p.First != w.First || p.Last != w.Last || p.GUID == "" {
			t.Errorf("partition %d: got %+v want %+v", i+1, p, w)
		}
	}
	if got.Partitions[1].GUID != want.Partitions[1].GUID {
		t.Errorf("GUID %s, want %s", got.Partitions[1].GUID, want.Partitions[1].GUID)
	}
	// Destroy the primary header: the backup still gives the table.
	if _, err := f.WriteAt(make([]byte, 512), 512); err != nil {
		t.Fatal(err)
	}
	if got, err = Read(f, size, 512); err != nil || len(got.Partitions) != 3 {
		t.Fatalf("from backup: %+v, %v", got, err)
	}
	// And without either, a clear error.
	if _, err := f.WriteAt(make([]byte, 512), size-512); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(f, size, 512); !errors.Is(err, ErrNoTable) {
		t.Fatalf("no table: %v", err)
	}
}

func TestRejects(t *testing.T) {
	const size = 16 << 20
	f := diskFile(t, size)
	bad := sample(size)
	bad.Partitions[1].First = 4000
	if err := Write(f, size, bad); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlap: %v", err)
	}
	bad = sample(size)
	bad.Partitions[2].Last++
	if err := Write(f, size, bad); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("past the end: %v", err)
	}
	if err := Write(f, 32<<10, Table{SectorSize: 512}); err == nil {
		t.Error("a 32 KiB disk took a GPT")
	}
	buf := make([]byte, 512)
	if _, err := f.ReadAt(buf, 0); err != nil || buf[510] != 0 {
		t.Errorf("a refused write wrote the MBR (%v)", err)
	}
}

// sfdisk (util-linux) is an outside oracle for the on-disk format.
func TestSfdiskReadsIt(t *testing.T) {
	sfdisk, err := exec.LookPath("sfdisk")
	if err != nil {
		t.Skip("sfdisk not installed (make deps installs fdisk)")
	}
	const size = 16 << 20
	f := diskFile(t, size)
	want := sample(size)
	if err := Write(f, size, want); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sfdisk, "--json", f.Name()).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	var dump struct {
		PartitionTable struct {
			Label, ID  string
			Partitions []struct {
				Start, Size uint64
				Type, UUID  string
				Name        string
			}
		}
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pt := dump.PartitionTable
	if pt.Label != "gpt" || pt.ID != want.DiskGUID || len(pt.Partitions) != 3 {
		t.Fatalf("sfdisk sees %s", out)
	}
	for i, p := range pt.Partitions {
		w := want.Partitions[i]
		if p.Type != w.Type || p.Name != w.Name || p.Start != w.First || p.Size != w.Last-w.First+1 {
			t.Errorf("sfdisk partition %d: %+v, want %+v", i+1, p, w)
		}
	}
	if out, err := exec.Command(sfdisk, "--verify", f.Name()).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
}
