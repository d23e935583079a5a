package shares

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

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
		if err := c.putAccount(a, "a long password"); err != nil {
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
	conf := c.render("UNIT", "/data/documents")
	for _, want := range []string{"server min protocol = SMB3_00", "server signing = mandatory", "restrict anonymous = 2",
		"[Clients]\n", "path = /data/documents/Clients\n", "valid users = marie paul\n", "write list = marie\n", "read list = paul\n",
		"force user = documents\n", "read only = yes\n", "netbios name = UNIT\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("ksmbd.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "[Empty]") {
		t.Errorf("a share nobody may use is offered (ksmbd reads an empty list as everyone):\n%s", conf)
	}
	if u := c.users(); !strings.HasPrefix(u, "marie:") || strings.Count(u, "\n") != 3 || strings.Contains(u, "a long password") {
		t.Errorf("ksmbdpwd.db:\n%s", u)
	}
	if err := c.deleteAccount("PAUL"); err != nil {
		t.Fatal(err)
	}
	if len(c.Shares[0].ReadOnly) != 0 || c.accountIndex("paul") >= 0 {
		t.Errorf("a deleted account stays somewhere: %+v", c)
	}
	if err := c.deleteAccount("paul"); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("deleting an unknown account: %v", err)
	}
}
