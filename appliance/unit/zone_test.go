package unit

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// The time zone: UTC until set; what is not an IANA zone is refused and changes nothing; the one set is
// kept in the store, for the next start.
func TestTimeZone(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := &Unit{Store: st}
	if z := u.TimeZone().String(); z != "UTC" {
		t.Errorf("before any setting: %s", z)
	}
	for _, bad := range []string{"", "Local", "Mars/Olympus", "../../etc/passwd", "/etc/localtime"} {
		if err := u.SetTimeZone(bad); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("SetTimeZone(%q) = %v", bad, err)
		}
	}
	if err := u.SetTimeZone("Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	if z := (&Unit{Store: st}).TimeZone().String(); z != "Europe/Paris" {
		t.Errorf("after a restart: %s", z)
	}
}
