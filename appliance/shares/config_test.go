package shares

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"golang.org/x/crypto/md4" //lint:ignore SA1019 the NT hash is MD4
)

func TestNTHash(t *testing.T) {
	// The NT hash of "password" (MS-NLMP's NTOWFv1, as published in every NTLM test vector).
	if got := hex.EncodeToString(ntHash("password")); got != "8846f7eaee8fb117ad06bdd830b7586c" {
		t.Fatalf("ntHash(password) = %s", got)
	}
	// Non-ASCII goes in as UTF-16LE ("é" is E9 00), not as its UTF-8 bytes.
	h := md4.New()
	h.Write([]byte{0xe9, 0x00})
	if !bytes.Equal(ntHash("é"), h.Sum(nil)) {
		t.Fatal("ntHash(é) is not MD4 over E9 00")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Clients", true}, {"Dossiers 2026", true}, {"Comptabilité", true}, {"a-b_c.d", true},
		{"", false}, {"../etc", false}, {"a/b", false}, {`a\b`, false}, {"x]\n[global", false}, {".hidden", false},
		{"trailing ", false}, {"IPC$", false}, {"global", false}, {"Homes", false}, {"a;b", false}, {"a\x00", false},
		{strings.Repeat("x", 63), true}, {strings.Repeat("x", 64), false}, {"\xff\xfe", false},
	} {
		err := checkShareName(tc.name)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("share name %q: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"marie", true}, {"j.dupont", true}, {"Accueil-2", true}, {"", false}, {".x", false}, {"a b", false},
		{"a:b", false}, {"é", false}, {"root", false}, {"Documents", false}, {strings.Repeat("a", 33), false},
	} {
		err := checkAccountName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("account name %q: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if checkPassword("short") == nil || checkPassword("long enough\nno") == nil || checkPassword("correct horse") != nil {
		t.Error("password checks")
	}
}

func TestConfig(t *testing.T) {
	var c config
	for _, a := range []string{"marie", "paul", "zoe"} {
		if err := c.putAccount(a, "a long password", time.Unix(0x6a000000, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.putShare(appliance.FileShare{Name: "Clients", ReadWrite: []string{"Marie"}, ReadOnly: []string{"paul"}}); err != nil {
		t.Fatal(err)
	}
	if got := c.Shares[0].ReadWrite; len(got) != 1 || got[0] != "marie" {
		t.Errorf("an account is kept under its own spelling: %v", got)
	}
	for _, bad := range []appliance.FileShare{
		{Name: "Archive", ReadWrite: []string{"nobody-here"}},
		{Name: "Archive", ReadWrite: []string{"paul"}, ReadOnly: []string{"paul"}},
		{Name: "Archive", Comment: "x\n[global]"},
	} {
		if err := c.putShare(bad); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("putShare(%+v) = %v, want a bad input", bad, err)
		}
	}
	if err := c.putShare(appliance.FileShare{Name: "Empty"}); err != nil {
		t.Fatal(err)
	}
	if err := c.putShare(appliance.FileShare{Name: "Secret", ReadWrite: []string{"zoe"}, Encrypt: true}); err != nil {
		t.Fatal(err)
	}
	conf := c.render("UNIT", paths{Docs: "/data/documents", Run: "/run/samba", Private: "/system/samba"})
	for _, want := range []string{"server min protocol = SMB3_00", "server signing = mandatory", "restrict anonymous = 2",
		"map to guest = never", "passdb backend = smbpasswd:/run/samba/smbpasswd\n", "private dir = /system/samba\n",
		"[Clients]\n", "path = /data/documents/Clients\n", "valid users = marie paul\n", "write list = marie\n", "read list = paul\n",
		"force user = documents\n", "read only = yes\n", "netbios name = UNIT\n", "[Secret]\n\tpath = /data/documents/Secret\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("smb.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Count(conf, "smb encrypt = required") != 1 || !strings.HasSuffix(conf, "smb encrypt = required\n") {
		t.Errorf("only the share that asks for it requires encryption:\n%s", conf)
	}
	if strings.Contains(conf, "[Empty]") {
		t.Errorf("a share nobody may use is offered:\n%s", conf)
	}
	testparm(t, conf)
	pw := c.smbpasswd()
	if lines := strings.Split(strings.TrimSpace(pw), "\n"); len(lines) != 3 ||
		lines[0] != "marie:20000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:"+strings.ToUpper(hex.EncodeToString(ntHash("a long password")))+":[U          ]:LCT-6A000000:" ||
		!strings.HasPrefix(lines[2], "zoe:20002:") || strings.Contains(pw, "a long password") {
		t.Errorf("smbpasswd:\n%s", pw)
	}
	base := "root:x:0:0:root:/root:/bin/sh\ndocuments:x:1000:1000::/nonexistent:/bin/false\nold:x:20007:1000:file account:/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false"
	if got := c.passwd(base, 1000); got != "root:x:0:0:root:/root:/bin/sh\ndocuments:x:1000:1000::/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"+
		"marie:x:20000:1000:file account:/nonexistent:/bin/false\npaul:x:20001:1000:file account:/nonexistent:/bin/false\nzoe:x:20002:1000:file account:/nonexistent:/bin/false\n" {
		t.Errorf("passwd:\n%s", got)
	}
	if err := c.deleteAccount("PAUL"); err != nil {
		t.Fatal(err)
	}
	if err := c.putAccount("yves", "a long password", time.Now()); err != nil || c.Accounts[c.accountIndex("yves")].UID != 20003 {
		t.Errorf("a new account takes a number no account had: %+v %v", c.Accounts, err)
	}
	if len(c.Shares[0].ReadOnly) != 0 || c.accountIndex("paul") >= 0 {
		t.Errorf("a deleted account stays somewhere: %+v", c)
	}
	if err := c.deleteAccount("paul"); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("deleting an unknown account: %v", err)
	}
}

// testparm has Samba's own parser read the configuration (where Samba is installed: make deps installs it
// for the image): an unknown or misspelt parameter fails here, not on a unit.
func testparm(t *testing.T, conf string) {
	t.Helper()
	bin, err := exec.LookPath("testparm")
	if err != nil {
		t.Logf("testparm not installed: smb.conf not checked by Samba (make deps installs it)")
		return
	}
	f := filepath.Join(t.TempDir(), "smb.conf")
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--suppress-prompt", f).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Unknown parameter") || strings.Contains(string(out), "Ignoring unknown") || strings.Contains(string(out), "ERROR") {
		t.Errorf("testparm: %v\n%s", err, out)
	}
}
