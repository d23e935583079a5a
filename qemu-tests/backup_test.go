package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startS3 runs versitygw (a real S3 server, installed by `make deps`) on 127.0.0.1 with one bucket and
// returns its address.
func startS3(t *testing.T, bucket string) (addr, dir string) {
	t.Helper()
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	bin := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("versitygw is not installed (make deps installs it): %v", err)
	}
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := freeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--port", addr, "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY=office-key", "ROOT_SECRET_KEY=office-secret-key")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 10*time.Second, "versitygw listening", func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	return addr, dir
}

// A single unit backs its database up to a real S3 server on the host (reached through guestfwd): the
// recovery identity is shown once, the dump lands on the unit's array and in the bucket, encrypted (no
// client name readable there), and the unit verifies it by restoring it from the bucket.
func TestBackupToS3(t *testing.T) {
	parallel(t)
	addr, dir := startS3(t, "office")
	u := boot(t, Config{
		Disks:    []Disk{{ID: "a", Kind: Virtio, Serial: "BK-A", SizeMiB: 1024}, {ID: "b", Kind: Virtio, Serial: "BK-B", SizeMiB: 1024}},
		GuestFwd: []string{"tcp:198.18.0.101:80-cmd:socat - TCP:" + addr},
	})
	u.http.Timeout = 3 * time.Minute // a backup and a verification answer when done
	tok := u.setupAndLogin()
	eventually(t, 3*time.Minute, "database running", func() error {
		if code, body := u.call("GET", "/api/v1/database", tok, ""); code != 200 || !strings.Contains(body, `"state":"running"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	code, body := u.call("POST", "/api/v1/database/databases", tok, `{"name":"practice","owner":"practice_app"}`)
	var nd newDatabase
	if code != 201 || json.Unmarshal([]byte(body), &nd) != nil {
		t.Fatalf("create = %d %s", code, body)
	}
	u.exec(t, nd.URL, "CREATE TABLE matters (id int PRIMARY KEY, client text); INSERT INTO matters SELECT g, 'client ' || g FROM generate_series(1, 3000) g")
	// The owner the UI handed out sets traps for the unit's superuser sessions: a function named like a
	// catalog one in front of the catalog, an index whose function refuses to run as a superuser, and a
	// role setting whose newline would be a statement of its own in a script run line by line. Backup,
	// verification and the disaster recovery below go through all of them.
	traps, err := os.ReadFile("../appliance/backup/engine/testdata/owner_traps.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range strings.Split(string(traps), "\n-- next\n") {
		u.exec(t, nd.URL, q)
	}

	if code, body := u.call("POST", "/api/v1/backups/run", tok, ""); code != 409 {
		t.Errorf("backup before set-up = %d %s", code, body)
	}
	code, body = u.call("POST", "/api/v1/backups/identity", tok, "")
	var sheet struct{ Identity string }
	if code != 201 || json.Unmarshal([]byte(body), &sheet) != nil || !strings.HasPrefix(sheet.Identity, "AGE-SECRET-KEY-") {
		t.Fatalf("identity = %d %s", code, body)
	}
	if code, _ := u.call("POST", "/api/v1/backups/identity", tok, ""); code != 409 {
		t.Errorf("identity again = %d", code)
	}
	target := `[{"kind":"s3","endpoint":"198.18.0.101:80","bucket":"office","access_key":"office-key","secret_key":"%s","insecure":true,"region":"us-east-1"}]`
	if code, body := u.call("PUT", "/api/v1/backups/targets", tok, fmt.Sprintf(target, "wrong")); code != 400 {
		t.Errorf("target with a wrong key = %d %s", code, body)
	}
	if code, body := u.call("PUT", "/api/v1/backups/targets", tok, fmt.Sprintf(target, "office-secret-key")); code != 204 {
		t.Fatalf("target = %d %s", code, body)
	}
	// The office's file share (the folder the documents backup reads below) and its account: in the
	// backup's configuration, restored onto the new unit.
	for _, c := range []struct{ path, body string }{
		{"/api/v1/file-accounts/marie", `{"password":"Marie's long password"}`},
		{"/api/v1/shares/smith", `{"read_write":["marie"],"comment":"the Smith file"}`},
	} {
		if code, body := u.call("PUT", c.path, tok, c.body); code/100 != 2 {
			t.Fatalf("%s = %d %s", c.path, code, body)
		}
	}
	code, body = u.call("POST", "/api/v1/backups/run", tok, `{"kind":"dump"}`)
	var b struct {
		ID      string   `json:"id"`
		Targets []string `json:"targets"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &b) != nil {
		t.Fatalf("backup = %d %s", code, body)
	}
	stored, err := os.ReadFile(filepath.Join(dir, "office", b.ID, "practice.dump.zst.age"))
	if err != nil {
		t.Fatalf("the dump is not in the bucket: %v", err)
	}
	if strings.Contains(string(stored), "client 42") || !strings.HasPrefix(string(stored), "age-encryption.org/v1") {
		t.Error("the dump in the bucket is readable without the recovery identity")
	}
	code, body = u.call("POST", "/api/v1/backups/"+b.ID+"/verify", tok, "")
	if code != 200 || !strings.Contains(body, `"ok":true`) || !strings.Contains(body, "s3://") {
		t.Fatalf("verify = %d %s", code, body)
	}
	t.Logf("verification: %s", body)
	if code, body := u.call("GET", "/api/v1/backups", tok, ""); code != 200 || !strings.Contains(body, `"last_verified":{`) {
		t.Errorf("backups = %d %s", code, body)
	}
	if code, body := u.call("GET", "/api/v1/database/databases/practice/export", tok, ""); code != 200 || !strings.HasPrefix(body, "PGDMP") {
		t.Errorf("export = %d (%d bytes)", code, len(body))
	}
	pointInTime(t, u, tok, nd.URL, dir)
	docsID, contract := documentsBackedUpOnce(t, u, tok, dir)

	// Both units are lost.
	if err := u.Kill9(); err != nil {
		t.Fatal(err)
	}
	restoredOnANewUnit(t, addr, sheet.Identity, target, b.ID, docsID, contract, nd.URL)
}

// documentsBackedUpOnce: a folder on the array, backed up once; no change, no new backup; the content in the
// bucket.
func documentsBackedUpOnce(t *testing.T, u *unit, tok, dir string) (id, contract string) {
	contract = u.fill("documents/smith/contract.pdf", 2, 7)
	if code, body := u.call("PUT", "/api/v1/backups/documents", tok, `{"folders":["/data/postgresql"]}`); code != 400 {
		t.Errorf("the database's own folder as documents = %d %s", code, body)
	}
	if code, body := u.call("PUT", "/api/v1/backups/documents", tok, `{"folders":["/data/documents"]}`); code != 204 {
		t.Fatalf("document folders = %d %s", code, body)
	}
	type backupInfo struct {
		ID    string `json:"id"`
		Kind  string `json:"kind"`
		Files int    `json:"files"`
	}
	var docs backupInfo
	code, body := u.call("POST", "/api/v1/backups/run", tok, `{"kind":"documents"}`)
	if code == 409 { // the unit's own schedule took it first
		var st struct{ Backups []backupInfo }
		u.get("/api/v1/backups", tok, &st)
		for _, b := range st.Backups {
			if b.Kind == "documents" {
				docs = b
			}
		}
	} else if code != 201 || json.Unmarshal([]byte(body), &docs) != nil {
		t.Fatalf("documents backup = %d %s", code, body)
	}
	if docs.Files != 1 {
		t.Fatalf("documents backup: %+v", docs)
	}
	if code, body := u.call("POST", "/api/v1/backups/run", tok, `{"kind":"documents"}`); code != 409 {
		t.Errorf("a documents backup with nothing changed = %d %s", code, body)
	}
	eventually(t, time.Minute, "the document's content in the bucket", func() error {
		if keys, _ := filepath.Glob(filepath.Join(dir, "office", "docs", "*.zst.age")); len(keys) != 1 {
			return fmt.Errorf("document contents in the bucket: %v", keys)
		}
		return nil
	})
	return docs.ID, contract
}

// pointInTime: a mistake undone to the second: a base copy, new matters, every matter deleted a moment later.
// A second base copy ends the WAL segment (the unit's own 5-minute timeout would too) and ships it. The
// database as it was before the mistake comes back under a new name; the current one is untouched.
func pointInTime(t *testing.T, u *unit, tok, dbURL, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if code, body := u.call("POST", "/api/v1/backups/run", tok, `{"kind":"base"}`); code != 201 {
		t.Fatalf("base copy = %d %s", code, body)
	}
	app, err := u.connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var before time.Time
	if _, err := app.Exec(ctx, "INSERT INTO matters SELECT g, 'client ' || g FROM generate_series(3001, 3500) g"); err != nil {
		t.Fatal(err)
	}
	if err := app.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := app.Exec(ctx, "DELETE FROM matters"); err != nil {
		t.Fatal(err)
	}
	app.Close(ctx)
	time.Sleep(time.Second) // a new backup id
	if code, body := u.call("POST", "/api/v1/backups/run", tok, `{"kind":"base"}`); code != 201 {
		t.Fatalf("second base copy = %d %s", code, body)
	}
	if code, body := u.call("POST", "/api/v1/backups/point-in-time", tok, `{"at":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`","databases":["practice"],"into":"practice_future"}`); code != 400 {
		t.Errorf("a moment in the future = %d %s", code, body)
	}
	code, body := u.call("POST", "/api/v1/backups/point-in-time", tok, `{"at":"`+before.UTC().Format(time.RFC3339Nano)+`","databases":["practice"],"into":"practice_then"}`)
	if code != 200 || !strings.Contains(body, `"rows":3500`) {
		t.Fatalf("point-in-time restore = %d %s", code, body)
	}
	t.Logf("point-in-time restore: %s", body)
	if code, body := u.call("GET", "/api/v1/backups", tok, ""); code != 200 || !strings.Contains(body, `"point_in_time_since":"`) || !strings.Contains(body, `"kind":"base"`) {
		t.Errorf("backups after two base copies = %d %s", code, body)
	}
	pu, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pu.Path = "/practice_then"
	then := pu.String()
	for url, want := range map[string]int{then: 3500, dbURL: 0} {
		c, err := u.connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = c.QueryRow(ctx, "SELECT count(*) FROM matters").Scan(&n)
		c.Close(ctx)
		if err != nil || n != want {
			t.Errorf("%s has %d matters (%v), want %d", url, n, err, want)
		}
	}
	if keys, err := filepath.Glob(filepath.Join(dir, "office", "wal", "*.zst.age")); err != nil || len(keys) == 0 {
		t.Errorf("no WAL in the bucket (%v)", err)
	}
}

// restoredOnANewUnit: a new unit, set up from scratch, gets the recovery sheet's identity and the target, finds
// the backup there and restores it: the office's application connects with its old credentials and finds
// every matter; the documents and the settings (the share and its account) come back, and it serves them.
func restoredOnANewUnit(t *testing.T, s3addr, identity, target, dumpID, docsID, contract, appURL string) {
	n := boot(t, Config{
		Disks:    []Disk{{ID: "a", Kind: Virtio, Serial: "DR-A", SizeMiB: 1024}, {ID: "b", Kind: Virtio, Serial: "DR-B", SizeMiB: 1024}},
		GuestFwd: []string{"tcp:198.18.0.101:80-cmd:socat - TCP:" + s3addr},
	})
	n.http.Timeout = 3 * time.Minute
	ntok := n.setupAndLogin()
	eventually(t, 3*time.Minute, "new unit's database running", func() error {
		if code, body := n.call("GET", "/api/v1/database", ntok, ""); code != 200 || !strings.Contains(body, `"state":"running"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, body := n.call("POST", "/api/v1/backups/identity/import", ntok, `{"identity":"AGE-SECRET-KEY-1WRONG"}`); code != 400 {
		t.Errorf("a mistyped identity = %d %s", code, body)
	}
	if code, body := n.call("POST", "/api/v1/backups/identity/import", ntok, fmt.Sprintf(`{"identity":%q}`, identity)); code != 204 {
		t.Fatalf("import = %d %s", code, body)
	}
	if code, body := n.call("PUT", "/api/v1/backups/targets", ntok, fmt.Sprintf(target, "office-secret-key")); code != 204 {
		t.Fatalf("target on the new unit = %d %s", code, body)
	}
	if code, body := n.call("GET", "/api/v1/backups", ntok, ""); code != 200 || !strings.Contains(body, `"id":"`+dumpID+`"`) || !strings.Contains(body, `"databases":["practice"]`) {
		t.Fatalf("the new unit's backups = %d %s", code, body)
	}
	code, body := n.call("POST", "/api/v1/backups/"+dumpID+"/restore", ntok, `{}`)
	if code != 200 || !strings.Contains(body, `"into":"practice"`) {
		t.Fatalf("restore = %d %s", code, body)
	}
	t.Logf("disaster recovery: %s", body)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // the new unit's own deadline, after its boot
	defer cancel()
	c, err := n.connect(ctx, appURL)
	if err != nil {
		t.Fatalf("the application's credentials on the new unit: %v", err)
	}
	defer c.Close(ctx)
	var matters int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM matters").Scan(&matters); err != nil || matters != 3000 {
		t.Errorf("the new unit has %d matters (%v)", matters, err)
	}
	var super bool
	if err := c.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super); err != nil || super {
		t.Errorf("the restored owner is a superuser: %v (%v)", super, err)
	}
	code, body = n.call("POST", "/api/v1/backups/"+docsID+"/restore", ntok, `{}`)
	if code != 200 || !strings.Contains(body, `"restored":1`) {
		t.Fatalf("documents restore = %d %s", code, body)
	}
	n.checkData(map[string]string{"documents/smith/contract.pdf": contract})
	// The settings: the share and its account (same password) come back, and the new unit serves the
	// restored documents through it.
	code, body = n.call("POST", "/api/v1/backups/"+dumpID+"/config/restore", ntok, "")
	if code != 200 || !strings.Contains(body, "1 file shares and 1 file accounts") || !strings.Contains(body, `"not_restored":[`) {
		t.Fatalf("configuration restore = %d %s", code, body)
	}
	t.Logf("configuration restore: %s", body)
	eventually(t, time.Minute, "the new unit serves the restored share", func() error {
		out, err := n.smb("smith", "marie", "Marie's long password", "-c", "ls")
		if err != nil || !strings.Contains(out, "contract.pdf") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if code, body := n.call("POST", "/api/v1/backups/"+dumpID+"/restore", ntok, `{}`); code != 409 {
		t.Errorf("a second restore over the restored database without replace = %d %s", code, body)
	}
}
