package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
)

// Documents backed up with a real cluster holding the identity: folders outside the data array or the
// appliance's own refused; a file's content stored once however many files have it, encrypted; no change,
// no backup; a changed file is the only one stored again; one document downloaded as it was; a restore
// writes back what is missing, leaves what is identical and puts the old version beside a file that
// changed; verification reads every content back and finds a damaged one.
func TestDocuments(t *testing.T) {
	s := pgtest.Start(t)
	svc := newService(t, s)
	ctx := context.Background()
	if _, err := svc.CreateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	svc.DataRoot = root
	docs := filepath.Join(root, "documents")
	pdf := make([]byte, 200<<10)
	rand.Read(pdf)
	files := map[string][]byte{"letter.txt": []byte("Dear client, about the Smith matter"), "smith/contract.pdf": pdf, "copy of letter.txt": []byte("Dear client, about the Smith matter")}
	for name, b := range files {
		p := filepath.Join(docs, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "postgresql"), 0o700)
	for _, bad := range [][]string{{"/etc"}, {filepath.Join(root, "postgresql")}, {filepath.Join(root, "nope")}, {"relative"}, {root}} {
		if err := svc.SetDocumentFolders(ctx, bad); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("document folders %v: %v", bad, err)
		}
	}
	if _, err := svc.RunBackup(ctx, engine.KindDocuments); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("a documents backup without folders: %v", err)
	}
	if err := svc.SetDocumentFolders(ctx, []string{docs}); err != nil {
		t.Fatal(err)
	}
	first, err := svc.RunBackup(ctx, engine.KindDocuments)
	if err != nil || first.Files != 3 {
		t.Fatalf("documents backup: %+v %v", first, err)
	}
	stored := func() []string {
		keys, _ := svc.Engine.Local.List(ctx)
		var out []string
		for _, k := range keys {
			if strings.HasPrefix(k, engine.DocsPrefix) {
				out = append(out, k)
			}
		}
		return out
	}
	if got := stored(); len(got) != 2 {
		t.Errorf("stored contents %v: want 2 (two files share one)", got)
	}
	for _, k := range stored() {
		b, _ := os.ReadFile(filepath.Join(svc.Engine.Local.(target.Dir).Path, k))
		if bytes.Contains(b, []byte("Smith")) {
			t.Errorf("%s is readable", k)
		}
	}
	if _, err := svc.RunBackup(ctx, engine.KindDocuments); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a documents backup with nothing changed: %v", err)
	}

	// The contract changes (a later time too); the letter is deleted.
	contract := filepath.Join(docs, "smith", "contract.pdf")
	os.WriteFile(contract, append(bytes.Clone(pdf), "signed"...), 0o640)
	later := time.Now().Add(time.Minute)
	os.Chtimes(contract, later, later)
	time.Sleep(time.Second) // a new backup id
	second, err := svc.RunBackup(ctx, engine.KindDocuments)
	if err != nil || second.Files != 3 {
		t.Fatalf("second documents backup: %+v %v", second, err)
	}
	if got := stored(); len(got) != 3 {
		t.Errorf("after one change, stored contents %v: want 3", got)
	}
	list, err := svc.DocumentFiles(ctx, first.ID)
	if err != nil || len(list) != 3 {
		t.Fatalf("documents of the first backup: %+v %v", list, err)
	}
	r, f, err := svc.OpenDocument(ctx, first.ID, contract)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, pdf) || f.Size != int64(len(pdf)) {
		t.Errorf("the first backup's contract: %d bytes (%v), size %d", len(got), err, f.Size)
	}
	if _, _, err := svc.OpenDocument(ctx, first.ID, "/etc/passwd"); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("a document not in the backup: %v", err)
	}

	restoreDocuments(t, ctx, svc, first.ID, docs, files["letter.txt"], pdf)

	damagedContentFails(t, ctx, svc, first.ID, second.ID, stored()[0])
	if st, _ := svc.Backups(ctx); len(st.DocumentFolders) != 1 || st.DocumentFolders[0] != docs {
		t.Errorf("document folders in the status: %v", st.DocumentFolders)
	}
}

// With no folder set, the documents backed up are the shares' volume, read where it says (a snapshot on
// a mirror) and named by the shares' folders; a share's folder may be set though this unit does not
// mount it; a volume that cannot be read fails the backup with its reason; nothing to back up, no backup.
func TestDocumentsOfTheShares(t *testing.T) {
	s := pgtest.Start(t)
	svc := newService(t, s)
	ctx := context.Background()
	if _, err := svc.CreateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	svc.DataRoot = root
	vol := &sharesVolume{root: filepath.Join(root, "documents"), snapshot: filepath.Join(t.TempDir(), "copy")}
	svc.Documents = vol
	if _, err := svc.RunBackup(ctx, engine.KindDocuments); !errors.Is(err, appliance.ErrConflict) || vol.opened != vol.closed {
		t.Errorf("a documents backup with no share ever used: %v (opened %d, released %d)", err, vol.opened, vol.closed)
	}
	os.MkdirAll(filepath.Join(vol.snapshot, "Clients"), 0o755)
	if err := os.WriteFile(filepath.Join(vol.snapshot, "Clients", "brief.odt"), []byte("the brief as replicated"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := svc.RunBackup(ctx, engine.KindDocuments)
	if err != nil || b.Files != 1 || vol.opened != 2 || vol.closed != 2 {
		t.Fatalf("documents backup of the shares: %+v %v (opened %d, released %d)", b, err, vol.opened, vol.closed)
	}
	files, err := svc.DocumentFiles(ctx, b.ID)
	if want := filepath.Join(vol.root, "Clients", "brief.odt"); err != nil || len(files) != 1 || files[0].Path != want {
		t.Errorf("files %+v %v, want %s", files, err, want)
	}
	if st, _ := svc.Backups(ctx); len(st.DocumentFolders) != 1 || st.DocumentFolders[0] != vol.root {
		t.Errorf("document folders shown: %v", st.DocumentFolders)
	}
	if err := svc.SetDocumentFolders(ctx, []string{filepath.Join(vol.root, "Clients")}); err != nil {
		t.Errorf("a share's folder, not mounted on this unit: %v", err)
	}
	vol.err = errors.New("documents: this unit's copy is not complete (inconsistent)")
	if err := os.WriteFile(filepath.Join(vol.snapshot, "Clients", "new.odt"), []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RunBackup(ctx, engine.KindDocuments); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Errorf("a backup of a copy that cannot be read: %v", err)
	}
}

// sharesVolume is the shares' volume as a pair's mirror offers it: its files read from a snapshot
// mounted elsewhere.
type sharesVolume struct {
	root, snapshot string
	err            error
	opened, closed int
}

func (v *sharesVolume) Root() string { return v.root }

func (v *sharesVolume) Open(context.Context) (string, func(), error) {
	if v.err != nil {
		return "", nil, v.err
	}
	v.opened++
	return v.snapshot, func() { v.closed++ }, nil
}

// damagedContentFails: verification reads every content back; one content damaged fails the backups that hold it.
func damagedContentFails(t *testing.T, ctx context.Context, svc *Service, first, second, content string) {
	if v, err := svc.VerifyBackup(ctx, first); err != nil || !v.OK {
		t.Errorf("verify documents: %+v %v", v, err)
	}
	obj := filepath.Join(svc.Engine.Local.(target.Dir).Path, content)
	b, _ := os.ReadFile(obj)
	b[len(b)/2] ^= 1
	os.WriteFile(obj, b, 0o600)
	v1, _ := svc.VerifyBackup(ctx, first)
	v2, _ := svc.VerifyBackup(ctx, second)
	if v1.OK && v2.OK {
		t.Error("a damaged content verified")
	}
}

// restoreDocuments: a restore writes back what is missing (the deleted letter), leaves what is identical and
// puts the old version beside a file that changed (the contract).
func restoreDocuments(t *testing.T, ctx context.Context, svc *Service, id, docs string, letter, pdf []byte) {
	contract := filepath.Join(docs, "smith", "contract.pdf")
	os.Remove(filepath.Join(docs, "letter.txt"))
	res, err := svc.RestoreBackup(ctx, id, appliance.BackupRestore{})
	if err != nil || res.Documents == nil || res.Documents.Restored != 2 || res.Documents.Unchanged != 1 || len(res.Documents.Beside) != 1 {
		t.Fatalf("documents restore: %+v %v", res.Documents, err)
	}
	if b, _ := os.ReadFile(filepath.Join(docs, "letter.txt")); !bytes.Equal(b, letter) {
		t.Error("the deleted letter did not come back")
	}
	if b, _ := os.ReadFile(res.Documents.Beside[0]); !bytes.Equal(b, pdf) || !strings.HasPrefix(res.Documents.Beside[0], contract+".restored-") {
		t.Errorf("the old contract beside the new one: %s", res.Documents.Beside[0])
	}
	if b, _ := os.ReadFile(contract); !bytes.HasSuffix(b, []byte("signed")) {
		t.Error("the restore overwrote the current contract")
	}
}
