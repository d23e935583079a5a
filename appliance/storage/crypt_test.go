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
	k := []byte("k")
	wrapped := map[string][]byte{"witness": {1}, "partner": {2}}
	for _, c := range []struct {
		name    string
		c       cryptState
		state   string
		holders string
		alerts  []string
	}{
		{"not encrypted", cryptState{}, "none", "", nil},
		{"nothing keeps it", cryptState{encrypted: true, key: k, token: keyToken{Clear: k, Recovery: true}}, "open", "",
			[]string{"a disk taken out of the unit is not protected (no TPM, partner unit or witness keeps it)"}},
		{"sealed, no sheet yet", cryptState{encrypted: true, key: k, token: keyToken{TPM: sealed, Clear: k}}, "open", "tpm",
			[]string{"also kept on the disks until a recovery sheet is made"}},
		{"sealed, with sheet", cryptState{encrypted: true, key: k, token: keyToken{TPM: sealed, Recovery: true}}, "open", "tpm", nil},
		{"the pair keeps it", cryptState{encrypted: true, key: k, token: keyToken{Wrapped: wrapped, Recovery: true}}, "open", "partner,witness", nil},
		{"locked", cryptState{encrypted: true, locked: "nothing holds its key", token: keyToken{Wrapped: wrapped}}, "locked", "partner,witness",
			[]string{"the data is locked: the data array is encrypted and nothing holds its key"}},
	} {
		e := c.c.status()
		if e.State != c.state || strings.Join(e.KeyHolders, ",") != c.holders || e.KeyOnDisks != (c.c.token.Clear != nil) {
			t.Errorf("%s: %+v, want %s kept by %q", c.name, e, c.state, c.holders)
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

// A holder's secret opens the unit key it wrapped, and no other secret does.
func TestWrapUnitKey(t *testing.T) {
	share, other, key := make([]byte, 32), make([]byte, 32), []byte("the unit key of the data array..")
	other[0] = 1
	w, err := wrap(share, key)
	if err != nil || strings.Contains(string(w), string(key)) {
		t.Fatalf("wrap: %v", err)
	}
	if got, err := unwrap(share, w); err != nil || string(got) != string(key) {
		t.Fatalf("unwrap = %q, %v", got, err)
	}
	if _, err := unwrap(other, w); err == nil {
		t.Fatal("another secret opened it")
	}
	if _, err := unwrap(share, nil); err == nil {
		t.Fatal("nothing wrapped opened")
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
