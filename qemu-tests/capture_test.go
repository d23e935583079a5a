package qemutests

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"time"
)

// capture saves what the storage planner reads on the unit now (the test agent's capture) as
// $LAWBOX_CAPTURE/name.tar.gz, the real inputs of appliance/storage's TestPlanCaptured; without
// LAWBOX_CAPTURE it does nothing.
func (u *unit) capture(name string) {
	dir := os.Getenv("LAWBOX_CAPTURE")
	if dir == "" {
		return
	}
	m := u.debug("capture", `debug: capture\r?\n([A-Za-z0-9+/=]+)\r?\ndebug: end`, time.Minute)
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		u.t.Fatalf("capture %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".tar.gz"), b, 0o644); err != nil {
		u.t.Fatal(err)
	}
}
