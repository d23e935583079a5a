package webui

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
)

type backupsPage struct {
	Status    appliance.BackupStatus
	Identity  string // the recovery identity, on the one page that creates it
	ID        string // the documents page: the backup
	Documents []appliance.DocumentFile
}

func (s *Server) apiBackups(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	st, err := s.backups.Backups(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiBackupIdentity(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("backup recovery identity requested", "user", sess.User, "remote", remote(r))
	id, err := s.backups.CreateIdentity(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"identity": id})
}

func (s *Server) apiBackupTargets(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var ts []appliance.BackupTarget
	if err := decode(r, &ts); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("backup targets set", "count", len(ts), "user", sess.User, "remote", remote(r))
	if err := s.backups.SetTargets(r.Context(), ts); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiBackupRetention(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var ret appliance.BackupRetention
	if err := decode(r, &ret); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("backup retention set", "daily", ret.Daily, "weekly", ret.Weekly, "monthly", ret.Monthly, "user", sess.User, "remote", remote(r))
	if err := s.backups.SetRetention(r.Context(), ret); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) formBackupRetention(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var ret appliance.BackupRetention
	var err error
	for _, f := range []struct {
		name string
		v    *int
	}{{"daily", &ret.Daily}, {"weekly", &ret.Weekly}, {"monthly", &ret.Monthly}} {
		if *f.v, err = strconv.Atoi(strings.TrimSpace(r.PostFormValue(f.name))); err != nil {
			s.renderBackups(w, r, sess, backupsPage{}, fmt.Errorf("%s: a number is needed: %w", f.name, appliance.ErrBadInput), "")
			return
		}
	}
	s.log.Warn("backup retention set", "daily", ret.Daily, "weekly", ret.Weekly, "monthly", ret.Monthly, "user", sess.User, "remote", remote(r))
	s.renderBackups(w, r, sess, backupsPage{}, s.backups.SetRetention(r.Context(), ret), "Retention saved: it applies at the next copy.")
}

type runBackup struct {
	Kind string `json:"kind"`
}

func (s *Server) apiRunBackup(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	longRequest(w)
	req := runBackup{Kind: "dump"}
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.log.Info("backup requested", "kind", req.Kind, "user", sess.User, "remote", remote(r))
	b, err := s.backups.RunBackup(r.Context(), req.Kind)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}

func (s *Server) apiVerifyBackup(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	longRequest(w)
	s.log.Info("backup verification requested", "id", r.PathValue("id"), "user", sess.User, "remote", remote(r))
	v, err := s.backups.VerifyBackup(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type importIdentity struct {
	Identity string `json:"identity"`
}

func (s *Server) apiImportIdentity(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var req importIdentity
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("backup recovery identity imported", "user", sess.User, "remote", remote(r))
	if err := s.backups.ImportIdentity(r.Context(), req.Identity); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiRestoreBackup(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	longRequest(w)
	var req appliance.BackupRestore
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("backup restore requested", "id", r.PathValue("id"), "databases", req.Databases, "into", req.Into, "replace", req.Replace, "user", sess.User, "remote", remote(r))
	res, err := s.backups.RestoreBackup(r.Context(), r.PathValue("id"), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

type pointInTime struct {
	At time.Time `json:"at"`
	appliance.BackupRestore
}

func (s *Server) apiPointInTime(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	longRequest(w)
	var req pointInTime
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("point-in-time restore requested", "at", req.At, "databases", req.Databases, "into", req.Into, "replace", req.Replace, "user", sess.User, "remote", remote(r))
	res, err := s.backups.RestorePointInTime(r.Context(), req.At, req.BackupRestore)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

type documentFolders struct {
	Folders []string `json:"folders"`
}

func (s *Server) apiDocumentFolders(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var req documentFolders
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("document folders set", "folders", req.Folders, "user", sess.User, "remote", remote(r))
	if err := s.backups.SetDocumentFolders(r.Context(), req.Folders); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) formDocumentFolders(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	folders := []string{}
	for _, l := range strings.Split(r.PostFormValue("folders"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			folders = append(folders, l)
		}
	}
	s.log.Warn("document folders set", "folders", folders, "user", sess.User, "remote", remote(r))
	s.renderBackups(w, r, sess, backupsPage{}, s.backups.SetDocumentFolders(r.Context(), folders), "Document folders saved: they are backed up within 15 minutes, then whenever a document changes.")
}

func (s *Server) apiDocuments(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	ds, err := s.backups.DocumentFiles(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

func (s *Server) pageDocuments(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	ds, err := s.backups.DocumentFiles(r.Context(), r.PathValue("id"))
	d, code := pageData{Session: sess, Backups: backupsPage{ID: r.PathValue("id"), Documents: ds}}, http.StatusOK
	if err != nil {
		code, d.Error = statusOf(err)
	}
	s.render(w, r, code, "documents", d)
}

// downloadDocument sends one document of a documents backup (?path=) as a file to save.
func (s *Server) downloadDocument(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	longRequest(w)
	p := r.URL.Query().Get("path")
	s.log.Warn("document downloaded from a backup", "id", r.PathValue("id"), "path", p, "user", sess.User, "remote", remote(r))
	rc, f, err := s.backups.OpenDocument(r.Context(), r.PathValue("id"), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	dw := &download{w: w, name: path.Base(f.Path)}
	if _, err := io.Copy(dw, rc); err != nil {
		if dw.started {
			s.log.Error("document download failed", "path", p, "err", err)
			panic(http.ErrAbortHandler)
		}
		s.fail(w, r, err)
	}
}

// export streams a current dump of one database to the admin, as a file to save. The answer starts with
// the dump's first bytes, so a database that is not there is still a 404; a dump that fails halfway
// aborts the connection, so the browser never keeps a truncated file as a finished download.
func (s *Server) export(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	longRequest(w)
	db := r.PathValue("database")
	s.log.Warn("database export requested", "database", db, "user", sess.User, "remote", remote(r))
	dw := &download{w: w, name: db + "-" + time.Now().UTC().Format("20060102-1504") + ".dump"}
	if err := s.backups.Export(r.Context(), db, dw); err != nil {
		if dw.started {
			s.log.Error("database export failed", "database", db, "err", err)
			panic(http.ErrAbortHandler)
		}
		s.fail(w, r, err)
	}
}

type download struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (d *download) Write(b []byte) (int, error) {
	if !d.started {
		d.started = true
		h := d.w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": d.name}))
		d.w.WriteHeader(http.StatusOK)
	}
	return d.w.Write(b)
}

func (s *Server) pageBackups(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderBackups(w, r, sess, backupsPage{}, nil, "")
}

func (s *Server) renderBackups(w http.ResponseWriter, r *http.Request, sess appliance.Session, p backupsPage, actionErr error, notice string) {
	st, err := s.backups.Backups(r.Context())
	p.Status = st
	d := pageData{Session: sess, Backups: p, Notice: notice}
	if err == nil {
		err = actionErr
	}
	if err != nil {
		_, d.Error = statusOf(err)
		d.Notice = ""
	}
	s.render(w, r, http.StatusOK, "backups", d)
}

func (s *Server) formBackupIdentity(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("backup recovery identity requested", "user", sess.User, "remote", remote(r))
	id, err := s.backups.CreateIdentity(r.Context())
	s.renderBackups(w, r, sess, backupsPage{Identity: id}, err, "")
}

func (s *Server) formRunBackup(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Info("backup requested", "kind", "dump", "user", sess.User, "remote", remote(r))
	s.formJob(w, r, sess, "backup", "", func(ctx context.Context) (string, error) {
		b, err := s.backups.RunBackup(ctx, "dump")
		if b.TakenOn != "" {
			return "Backup taken by the mirror unit: it takes this pair's backups, and lists them on its backups page.", err
		}
		return "Backup taken.", err
	})
}

func (s *Server) formVerifyBackup(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	id := r.PathValue("id")
	s.log.Info("backup verification requested", "id", id, "user", sess.User, "remote", remote(r))
	s.formJob(w, r, sess, "verify", id, func(ctx context.Context) (string, error) {
		v, err := s.backups.VerifyBackup(ctx, id)
		s.log.Info("backup verification", "id", id, "ok", v.OK, "detail", v.Detail)
		if err == nil && !v.OK {
			err = failed("The backup did not restore as it should: the backups page says what differed.")
		}
		return "The backup restored and checked as it should.", err
	})
}

func (s *Server) formImportIdentity(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("backup recovery identity imported", "user", sess.User, "remote", remote(r))
	err := s.backups.ImportIdentity(r.Context(), r.PostFormValue("identity"))
	s.renderBackups(w, r, sess, backupsPage{}, err, "Recovery identity set: add the offsite target that holds the backups, then restore.")
}

// restoreForm reads the database, new name and replace box of a restore form, or the document.
func restoreForm(r *http.Request) appliance.BackupRestore {
	req := appliance.BackupRestore{Into: strings.TrimSpace(r.PostFormValue("into")), Replace: r.PostFormValue("replace") == "replace"}
	if db := strings.TrimSpace(r.PostFormValue("database")); db != "" {
		req.Databases = []string{db}
	}
	if p := r.PostFormValue("path"); p != "" {
		req.Paths = []string{p}
	}
	return req
}

// restoredNotice says what a restore brought back and what it kept.
func restoredNotice(res appliance.BackupRestoreResult) string {
	if d := res.Documents; d != nil {
		msg := fmt.Sprintf("Documents restored: %d written back, %d already there as they were.", d.Restored, d.Unchanged)
		if len(d.Beside) > 0 {
			msg += " Written beside a current document that differs: " + strings.Join(d.Beside, ", ")
		}
		return msg
	}
	var done []string
	for _, d := range res.Databases {
		line := d.Database + " -> " + d.Into
		if d.KeptAs != "" {
			line += " (the previous one is kept as " + d.KeptAs + ")"
		}
		done = append(done, line)
	}
	return "Restored and checked: " + strings.Join(done, "; ")
}

// formRestoreBackup restores one database, or all of them ("" in the form), replacing existing ones only
// when the box is ticked.
func (s *Server) formRestoreBackup(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	req, id := restoreForm(r), r.PathValue("id")
	s.log.Warn("backup restore requested", "id", id, "databases", req.Databases, "into", req.Into, "replace", req.Replace, "user", sess.User, "remote", remote(r))
	s.formJob(w, r, sess, "restore", id, func(ctx context.Context) (string, error) {
		res, err := s.backups.RestoreBackup(ctx, id, req)
		return restoredNotice(res), err
	})
}

// formPointInTime restores to a moment given in the office's local time, as the page shows times.
func (s *Server) formPointInTime(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	req := restoreForm(r)
	v := r.PostFormValue("at")
	zone := s.sys.TimeZone()
	at, err := time.ParseInLocation("2006-01-02T15:04:05", v, zone)
	if err != nil {
		at, err = time.ParseInLocation("2006-01-02T15:04", v, zone)
	}
	if err != nil {
		s.renderBackups(w, r, sess, backupsPage{}, fmt.Errorf("moment %q: a date and a time are needed: %w", v, appliance.ErrBadInput), "")
		return
	}
	s.log.Warn("point-in-time restore requested", "at", at, "databases", req.Databases, "into", req.Into, "replace", req.Replace, "user", sess.User, "remote", remote(r))
	s.formJob(w, r, sess, "point-in-time", at.Format("2006-01-02 15:04:05"), func(ctx context.Context) (string, error) {
		res, err := s.backups.RestorePointInTime(ctx, at, req)
		return restoredNotice(res), err
	})
}

// longRequest lets a handler that waits for a backup or a restore answer after the server's usual write
// timeout (a verification restores the whole database).
func longRequest(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
}

// formBackupTarget sets the one offsite target the form describes (the API takes several).
func (s *Server) formBackupTarget(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	f := r.PostFormValue
	t := appliance.BackupTarget{Kind: f("kind"), Endpoint: f("endpoint"), Bucket: f("bucket"), Prefix: f("prefix"), Region: f("region"),
		AccessKey: f("access_key"), SecretKey: f("secret_key"), Insecure: f("insecure") == "on",
		User: f("user"), Password: f("password"), HostKey: f("host_key"), Path: f("path")}
	if v := strings.TrimSpace(f("limit_kbps")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.renderBackups(w, r, sess, backupsPage{}, fmt.Errorf("upload limit %q: a number of KB/s: %w", v, appliance.ErrBadInput), "")
			return
		}
		t.LimitKBps = n
	}
	s.log.Warn("backup targets set", "count", 1, "kind", t.Kind, "endpoint", t.Endpoint, "user", sess.User, "remote", remote(r))
	err := s.backups.SetTargets(r.Context(), []appliance.BackupTarget{t})
	s.renderBackups(w, r, sess, backupsPage{}, err, "Offsite target saved: backups are copied there from now on.")
}

func (s *Server) apiRestoreConfig(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("configuration restore requested", "id", r.PathValue("id"), "user", sess.User, "remote", remote(r))
	res, err := s.backups.RestoreConfig(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) formRestoreConfig(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if r.PostFormValue("confirm") != "yes" {
		s.renderBackups(w, r, sess, backupsPage{}, fmt.Errorf("%w: tick the box to confirm that this unit's file shares are replaced", appliance.ErrBadInput), "")
		return
	}
	id := r.PathValue("id")
	s.log.Warn("configuration restore requested", "id", id, "user", sess.User, "remote", remote(r))
	s.formJob(w, r, sess, "config-restore", id, func(ctx context.Context) (string, error) {
		_, err := s.backups.RestoreConfig(ctx, id)
		return "The file shares and file accounts are restored from the backup (their passwords too). Not restored: web accounts, the pair, the HTTPS certificate, network addresses, notification, storage and disk-health settings.", err
	})
}
