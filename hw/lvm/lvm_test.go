package lvm

import (
	"context"
	"os"
	"strings"
	"testing"
)

// The reports are lvm 2.03.16's own output, captured on a unit in QEMU (testdata/).
func TestParseReports(t *testing.T) {
	vgs, err := os.ReadFile("testdata/vgs.json")
	if err != nil {
		t.Fatal(err)
	}
	lvs, err := os.ReadFile("testdata/lvs.json")
	if err != nil {
		t.Fatal(err)
	}
	groups, err := parseReports(vgs, lvs)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Name != "lawbox" || groups[0].Size <= groups[0].Free || groups[0].Free <= 0 {
		t.Fatalf("groups %+v", groups)
	}
	var sum int64
	names := map[string]bool{}
	for _, v := range groups[0].Volumes {
		sum += v.Size
		names[v.Name] = v.Active
	}
	if !names["data"] || !names["documents"] || len(names) != 2 {
		t.Errorf("volumes %+v: want data and documents, active", groups[0].Volumes)
	}
	if sum+groups[0].Free != groups[0].Size {
		t.Errorf("volumes %d + free %d != group %d", sum, groups[0].Free, groups[0].Size)
	}

	empty, err := os.ReadFile("testdata/vgs-empty.json")
	if err != nil {
		t.Fatal(err)
	}
	if g, err := parseReports(empty, []byte(`{"report":[{"lv":[]}]}`)); err != nil || len(g) != 1 || g[0].Size != g[0].Free {
		t.Errorf("a new group: %+v %v", g, err)
	}
	if _, err := parseReports([]byte(`{"report":[{"vg":[{"vg_name":"x","vg_size":"12.5g","vg_free":"0"}]}]}`), lvs); err == nil {
		t.Error("a size with a unit was read")
	}
}

func TestOnlyAllowedDevices(t *testing.T) {
	var calls [][]string
	l := &LVM{Path: "/sbin/lvm", Devices: []string{"/dev/md1"}, Run: func(_ context.Context, argv ...string) ([]byte, error) {
		calls = append(calls, argv)
		return nil, nil
	}}
	if err := l.CreateVolume(context.Background(), "lawbox", "data", 100<<20); err != nil {
		t.Fatal(err)
	}
	argv := calls[0]
	if argv[0] != "/sbin/lvm" || argv[1] != "lvcreate" || argv[2] != "--config" {
		t.Fatalf("argv %q", argv)
	}
	if want := `filter=["a|^/dev/md1$|","r|.*|"]`; !strings.Contains(argv[3], want) {
		t.Errorf("config %q lacks %s", argv[3], want)
	}
	if !strings.Contains(argv[3], "udev_rules=0") {
		t.Errorf("config %q leaves the /dev nodes to a udev the unit does not run", argv[3])
	}
	if got := strings.Join(argv[4:], " "); got != "--yes --zero y --wipesignatures y --name data --size 104857600b lawbox" {
		t.Errorf("args %s", got)
	}
	calls = nil
	if err := l.Snapshot(context.Background(), "lawbox", "documents", "documents-copy", 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(context.Background(), "lawbox", "documents-copy"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(calls[0][4:], " "); calls[0][1] != "lvcreate" || got != "--yes --snapshot --name documents-copy --size 8388608b lawbox/documents" {
		t.Errorf("snapshot: %q", calls[0])
	}
	if got := strings.Join(calls[1][4:], " "); calls[1][1] != "lvremove" || got != "--yes lawbox/documents-copy" {
		t.Errorf("remove: %q", calls[1])
	}
	if err := (&LVM{}).Activate(context.Background(), "lawbox"); err == nil {
		t.Error("an LVM allowed no device ran (it would scan every disk, md members included)")
	}
}

func TestLabel(t *testing.T) {
	b := make([]byte, 2048)
	if hasLabel(b) {
		t.Error("zeros")
	}
	copy(b[512:], "LABELONE")
	if !hasLabel(b) {
		t.Error("label in sector 1")
	}
	f := t.TempDir() + "/pv"
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := Labelled(f); !ok || err != nil {
		t.Errorf("Labelled: %v %v", ok, err)
	}
	if _, err := Labelled(f + "-missing"); err == nil {
		t.Error("a missing device")
	}
}

// The default runner answers standard output only: lvm's warnings on standard error never reach the
// JSON reader (a unit in QEMU once failed to make its volumes on "File descriptor 7 leaked on lvm
// invocation" before the report).
func TestReportsReadStandardOutputOnly(t *testing.T) {
	sh := t.TempDir() + "/lvm"
	script := "#!/bin/sh\necho 'File descriptor 7 (/dev/console) leaked on lvm invocation.' >&2\n[ \"$LVM_SUPPRESS_FD_WARNINGS\" = 1 ] || exit 3\necho '{\"report\":[{\"vg\":[]}]}'\n"
	if err := os.WriteFile(sh, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := execStdout(context.Background(), sh, "vgs")
	if err != nil || strings.TrimSpace(string(out)) != `{"report":[{"vg":[]}]}` {
		t.Errorf("%q %v", out, err)
	}
	if _, err := execStdout(context.Background(), "/bin/sh", "-c", "echo why >&2; exit 5"); err == nil || !strings.Contains(err.Error(), "why") {
		t.Errorf("a failure without its standard error: %v", err)
	}
}
