// Package shares is the office's file server: SMB3 shares of folders on the data array, served by Samba's
// smbd, configured from the state store. (Not the kernel's ksmbd: the pinned Debian kernel's oopses on
// every open that gets no oplock, such as listing a folder; see the README.)
package shares

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/lawbox/appliance/appliance"
	"golang.org/x/crypto/md4" //lint:ignore SA1019 SMB's NTLM authentication is defined on MD4 (the NT hash); Samba keeps nothing else
)

// account is a file account as stored: the NT hash (MD4 of the UTF-16LE password) that SMB's
// challenge-response needs, never the password. Samba wants a Unix account behind each SMB one: UID is its
// number, given once and kept.
type account struct {
	Name    string    `json:"name"`
	NTHash  []byte    `json:"nt_hash"`
	UID     int       `json:"uid"`
	Changed time.Time `json:"changed"` // the password's last change
}

// firstUID is the first Unix user number of file accounts (the image's own accounts are below it).
const firstUID = 20000

// config is the file server's whole configuration, kept as one value in the state store.
type config struct {
	Shares   []appliance.FileShare `json:"shares"`
	Accounts []account             `json:"accounts"`
}

// Limits a name must fit (SMB allows longer share names, Windows refuses some characters in both). We take less, so that a name is also a safe folder name.
const (
	maxShareName   = 63
	maxAccountName = 32
	minPassword    = 10
	maxPassword    = 128
)

// reserved share names: Samba's own sections and Windows' administrative shares.
var reserved = []string{"global", "ipc$", "homes", "printers", "print$", "admin$", "c$"}

// checkShareName: letters (any language), digits, spaces, '-', '_' and '.', not starting with '.' or a
// space nor ending with a space or '.', so that the name is both a share name and one folder's name.
func checkShareName(name string) error {
	if name == "" || len(name) > maxShareName || !utf8.ValidString(name) {
		return fmt.Errorf("%w: a share name has 1 to %d characters", appliance.ErrBadInput, maxShareName)
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" -_.", r) {
			return fmt.Errorf("%w: share name %q: use letters, digits, spaces, '-', '_' or '.' (not %q)", appliance.ErrBadInput, name, r)
		}
	}
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, " ") || strings.HasSuffix(name, " ") || strings.HasSuffix(name, ".") {
		return fmt.Errorf("%w: share name %q: it may not start with a dot or a space, nor end with one", appliance.ErrBadInput, name)
	}
	if slices.Contains(reserved, strings.ToLower(name)) {
		return fmt.Errorf("%w: share name %q is reserved by SMB; choose another", appliance.ErrBadInput, name)
	}
	return nil
}

// systemUsers are the unit's own accounts (image/rootfs/etc/passwd): a file account may not take their names.
var systemUsers = []string{"root", "postgres", "nobody", Owner}

// checkAccountName: ASCII letters, digits, '.', '_' and '-', starting with a letter or digit.
func checkAccountName(name string) error {
	if name == "" || len(name) > maxAccountName {
		return fmt.Errorf("%w: an account name has 1 to %d characters", appliance.ErrBadInput, maxAccountName)
	}
	if slices.Contains(systemUsers, strings.ToLower(name)) {
		return fmt.Errorf("%w: %q is one of the unit's own system accounts; choose another name", appliance.ErrBadInput, name)
	}
	for i, r := range name {
		ok := r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || i > 0 && strings.ContainsRune("._-", r))
		if !ok {
			return fmt.Errorf("%w: account name %q: use letters a-z, digits, '.', '_' or '-' (not %q)", appliance.ErrBadInput, name, r)
		}
	}
	return nil
}

func checkPassword(p string) error {
	if n := utf8.RuneCountInString(p); n < minPassword || len(p) > maxPassword || !utf8.ValidString(p) {
		return fmt.Errorf("%w: a file account's password has %d to %d characters", appliance.ErrBadInput, minPassword, maxPassword)
	}
	if strings.ContainsAny(p, "\x00\n\r") {
		return fmt.Errorf("%w: a password may not contain a line break or a NUL character", appliance.ErrBadInput)
	}
	return nil
}

// ntHash is MD4 over the password in UTF-16LE: what NTLM proves knowledge of.
func ntHash(password string) []byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	h := md4.New()
	h.Write(b)
	return h.Sum(nil)
}

// accountIndex finds an account by name, as SMB compares them (case-insensitive).
func (c *config) accountIndex(name string) int {
	return slices.IndexFunc(c.Accounts, func(a account) bool { return strings.EqualFold(a.Name, name) })
}

func (c *config) shareIndex(name string) int {
	return slices.IndexFunc(c.Shares, func(s appliance.FileShare) bool { return strings.EqualFold(s.Name, name) })
}

// putShare checks a share and puts it into c (replacing the one of the same name).
func (c *config) putShare(s appliance.FileShare) error {
	if err := checkShareName(s.Name); err != nil {
		return err
	}
	if len(s.Comment) > 200 || strings.ContainsAny(s.Comment, "\n\r\x00;#[]") {
		return fmt.Errorf("%w: a share's comment has at most 200 characters, on one line, without ; # [ ]", appliance.ErrBadInput)
	}
	s.Comment = strings.TrimSpace(s.Comment)
	seen := map[string]bool{}
	clean := func(names []string) ([]string, error) {
		var out []string
		for _, n := range names {
			i := c.accountIndex(n)
			if i < 0 {
				return nil, fmt.Errorf("%w: share %q: no file account %q (create it first)", appliance.ErrBadInput, s.Name, n)
			}
			n = c.Accounts[i].Name
			if seen[n] {
				return nil, fmt.Errorf("%w: share %q: account %q is listed twice", appliance.ErrBadInput, s.Name, n)
			}
			seen[n] = true
			out = append(out, n)
		}
		sort.Strings(out)
		return out, nil
	}
	var err error
	if s.ReadWrite, err = clean(s.ReadWrite); err != nil {
		return err
	}
	if s.ReadOnly, err = clean(s.ReadOnly); err != nil {
		return err
	}
	if i := c.shareIndex(s.Name); i >= 0 {
		c.Shares[i] = s
	} else {
		c.Shares = append(c.Shares, s)
		sort.Slice(c.Shares, func(i, j int) bool { return strings.ToLower(c.Shares[i].Name) < strings.ToLower(c.Shares[j].Name) })
	}
	return nil
}

// putAccount adds an account or sets its password.
func (c *config) putAccount(name, password string, now time.Time) error {
	if err := checkAccountName(name); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	if i := c.accountIndex(name); i >= 0 {
		c.Accounts[i].NTHash, c.Accounts[i].Changed = ntHash(password), now
		return nil
	}
	uid := firstUID
	for _, a := range c.Accounts {
		uid = max(uid, a.UID+1)
	}
	c.Accounts = append(c.Accounts, account{Name: name, NTHash: ntHash(password), UID: uid, Changed: now})
	sort.Slice(c.Accounts, func(i, j int) bool { return c.Accounts[i].Name < c.Accounts[j].Name })
	return nil
}

// deleteAccount removes an account and takes it off every share.
func (c *config) deleteAccount(name string) error {
	i := c.accountIndex(name)
	if i < 0 {
		return fmt.Errorf("file account %q: %w", name, appliance.ErrNotFound)
	}
	name = c.Accounts[i].Name
	c.Accounts = slices.Delete(c.Accounts, i, i+1)
	for j := range c.Shares {
		drop := func(n string) bool { return n == name }
		c.Shares[j].ReadWrite = slices.DeleteFunc(c.Shares[j].ReadWrite, drop)
		c.Shares[j].ReadOnly = slices.DeleteFunc(c.Shares[j].ReadOnly, drop)
	}
	return nil
}

// Owner is the system account every share's files belong to (image/rootfs/etc/passwd): file accounts are
// SMB's, not the unit's, and the shares' own lists say who may read and write.
const Owner = "documents"

// paths is where the server keeps what it writes.
type paths struct {
	Docs    string // the shares' folders
	Run     string // smbpasswd, locks, sockets (a tmpfs)
	Private string // the server's own identity (its SID), kept across restarts
}

// Settings the server runs with, whatever the shares: SMB 3 only (SMB1 and SMB 2 are refused), signing
// required, encryption where a share asks for it (or the client does), nobody without an account, no
// NetBIOS, no printers.
var global = [][2]string{
	{"server role", "standalone server"},
	{"security", "user"},
	{"server string", "lawbox"},
	{"server min protocol", "SMB3_00"},
	{"server signing", "mandatory"},
	{"server smb encrypt", "if_required"},
	{"ntlm auth", "ntlmv2-only"},
	{"map to guest", "never"},
	{"restrict anonymous", "2"},
	{"disable netbios", "yes"},
	{"smb ports", "445"},
	{"load printers", "no"},
	{"printing", "bsd"},
	{"printcap name", "/dev/null"},
	{"disable spoolss", "yes"},
	{"unix password sync", "no"},
	{"obey pam restrictions", "no"},
	// A write is answered once it is on the disks (both units' disks: the documents volume replicates in
	// protocol C), not when it reaches the page cache, and a client's flush is honoured: an acknowledged
	// write survives the loss of the unit (Windows does not flush at close).
	{"strict sync", "yes"},
	{"sync always", "yes"},
	{"log level", "1"},
	// Unix ids of SIDs that are no account here (a Windows client's well-known groups)
	{"idmap config * : backend", "tdb"},
	{"idmap config * : range", "3000-7999"},
}

// render writes smb.conf for c.
func (c *config) render(netbios string, p paths) string {
	var b strings.Builder
	b.WriteString("# written by the appliance from its settings: changes here are lost\n[global]\n")
	for _, kv := range append([][2]string{{"netbios name", netbios}}, append(global,
		[2]string{"passdb backend", "smbpasswd:" + p.Run + "/smbpasswd"},
		[2]string{"private dir", p.Private},
		[2]string{"lock directory", p.Run},
		[2]string{"state directory", p.Run},
		[2]string{"cache directory", p.Run},
		[2]string{"pid directory", p.Run},
		[2]string{"ncalrpc dir", p.Run + "/ncalrpc"})...) {
		fmt.Fprintf(&b, "\t%s = %s\n", kv[0], kv[1])
	}
	for _, s := range c.Shares {
		if len(s.ReadWrite)+len(s.ReadOnly) == 0 {
			continue // nobody may use it: not offered
		}
		fmt.Fprintf(&b, "\n[%s]\n", s.Name)
		kv := [][2]string{
			{"path", p.Docs + "/" + s.Name},
			{"comment", s.Comment},
			{"browseable", "yes"},
			{"guest ok", "no"},
			{"read only", "yes"},
			{"valid users", strings.Join(append(slices.Clone(s.ReadWrite), s.ReadOnly...), " ")},
			{"write list", strings.Join(s.ReadWrite, " ")},
			{"read list", strings.Join(s.ReadOnly, " ")},
			{"force user", Owner},
			{"force group", Owner},
			{"create mask", "0660"},
			{"directory mask", "0770"},
		}
		if s.Encrypt {
			kv = append(kv, [2]string{"smb encrypt", "required"})
		}
		for _, p := range kv {
			fmt.Fprintf(&b, "\t%s = %s\n", p[0], p[1])
		}
	}
	return b.String()
}

// smbpasswd writes Samba's smbpasswd file: name, Unix id, no LM hash, the NT hash, a normal account, the
// password's last change (so that it is never "expired").
func (c *config) smbpasswd() string {
	var b strings.Builder
	for _, a := range c.Accounts {
		fmt.Fprintf(&b, "%s:%d:%s:%X:[U          ]:LCT-%08X:\n", a.Name, a.UID, strings.Repeat("X", 32), a.NTHash, a.Changed.Unix())
	}
	return b.String()
}

// passwd is base (the image's /etc/passwd) with the file accounts' Unix accounts, which have no home, no
// shell and no password of their own: Samba maps each SMB account to one, and every share forces Owner.
func (c *config) passwd(base string, gid int) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(base, "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 {
			if uid, err := strconv.Atoi(f[2]); err == nil && uid >= firstUID && uid < 65534 {
				continue // a file account written before
			}
		}
		b.WriteString(line)
	}
	if s := b.String(); s != "" && !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	for _, a := range c.Accounts {
		fmt.Fprintf(&b, "%s:x:%d:%d:file account:/nonexistent:/bin/false\n", a.Name, a.UID, gid)
	}
	return b.String()
}
