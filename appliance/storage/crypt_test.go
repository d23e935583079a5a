package storage

import (
	"strings"
	"testing"

	"github.com/lawbox/appliance/hw/tpm"
)

func TestRecoveryKeyAsTyped(t *testing.T) {
	for _, typed := range []string{"ABCD-EFGH-2345", "abcd efgh 2345", " AbCd-EfGh-2345\t"} {
		if got := string(normalRecoveryKey(typed)); got != "ABCDEFGH2345" {
			t.Errorf("%q -> %q", typed, got)
		}
	}
}

func TestEncryptionStatusAndAlerts(t *testing.T) {
	sealed := &tpm.Sealed{Public: []byte{1}, Private: []byte{2}}
	for _, c := range []struct {
		name   string
		c      cryptState
		state  string
		holder string
		alerts []string
	}{
		{"not encrypted", cryptState{}, "none", "", nil},
		{"sealed, no sheet", cryptState{encrypted: true, key: []byte("k"), token: keyToken{TPM: sealed}}, "open", "tpm",
			[]string{"no recovery sheet"}},
		{"sealed, with sheet", cryptState{encrypted: true, key: []byte("k"), token: keyToken{TPM: sealed, Recovery: true}}, "open", "tpm", nil},
		{"key on the disks", cryptState{encrypted: true, key: []byte("k"), token: keyToken{Clear: []byte("k"), Recovery: true}}, "open", "none",
			[]string{"a disk taken out of the unit is not protected"}},
		{"locked", cryptState{encrypted: true, locked: "nothing holds its key", token: keyToken{TPM: sealed}}, "locked", "tpm",
			[]string{"the data is locked: the data array is encrypted and nothing holds its key"}},
	} {
		e := c.c.status()
		if e.State != c.state || e.KeyHolder != c.holder {
			t.Errorf("%s: %+v, want %s held by %q", c.name, e, c.state, c.holder)
		}
		got := encryptionAlerts(e)
		if len(got) != len(c.alerts) {
			t.Errorf("%s: alerts %v, want %v", c.name, got, c.alerts)
			continue
		}
		for i, a := range got {
			if !strings.Contains(a.Message, c.alerts[i]) {
				t.Errorf("%s: alert %q, want %q", c.name, a.Message, c.alerts[i])
			}
			if c.state == "locked" && (a.Level != "critical" || a.Page != "/storage") {
				t.Errorf("%s: %+v", c.name, a)
			}
		}
	}
}

func TestKeyTokenSlot(t *testing.T) {
	if s, err := (keyToken{Type: tokenType, Keyslots: []string{"2"}}).slot(); err != nil || s != 2 {
		t.Errorf("slot %d, %v", s, err)
	}
	for _, k := range []keyToken{{Type: "luks2-keyring", Keyslots: []string{"0"}}, {Type: tokenType}, {Type: tokenType, Keyslots: []string{"x"}}} {
		if _, err := k.slot(); err == nil {
			t.Errorf("%+v: no error", k)
		}
	}
}
