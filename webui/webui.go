// Package webui serves the appliance's web interface and JSON API over HTTPS. It sees the appliance only
// through the interfaces of package appliance; it holds no state of its own beyond the request.
package webui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// MaxBodyBytes is the largest request body accepted; larger ones get 413.
const MaxBodyBytes = 64 << 10

// CookieName is the browser session cookie.
const CookieName = "session"

// Access says who may call a route.
type Access int

// Access levels, from least to most privileged.
const (
	Public Access = iota // setup, login, static files
	Viewer               // any logged-in user
	Admin                // admins only
)

// metricsRoute is the one route that also takes basic auth.
const metricsRoute = "GET /metrics"

// eventsRoute is the live dashboard's stream: the page opens it by itself, so it does not count as the
// user's activity (a dashboard left open does not keep its session alive past the idle timeout).
const eventsRoute = "GET /api/v1/events"

// Route is one entry of the route table. Every handler is reached through it, so access is checked in one place.
type Route struct {
	Pattern string // http.ServeMux pattern with method, e.g. "GET /api/v1/status"
	Access  Access
	Handler func(w http.ResponseWriter, r *http.Request, s appliance.Session)
}

// Server is the web UI.
type Server struct {
	auth    appliance.Auth
	sys     appliance.System
	disks   appliance.Storage
	health  appliance.Health
	db      appliance.Database
	pair    appliance.Pair
	net     appliance.Network
	backups appliance.Backups
	notify  appliance.Notifications
	certs   appliance.Certificates
	fw      appliance.Firmware
	shares  appliance.Shares
	clock   appliance.Clock
	log     *slog.Logger
	pages   map[string]map[string]*template.Template // language -> page

	sum  fresh[summary]
	stat fresh[appliance.Status]

	flash     flashes // the outcomes of forms, for the page after their redirect
	jobs      jobs
	jobCtx    context.Context // the jobs' context: Close cancels it
	jobStop   context.CancelFunc
	closing   chan struct{} // closed by Close: event streams end
	closeOnce sync.Once
}

// Close ends the open event streams (the HTTP server's shutdown would wait for them forever).
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		if s.jobStop != nil {
			s.jobStop()
		}
	})
}

// Parts are what the web UI shows and acts on.
type Parts struct {
	Auth     appliance.Auth
	System   appliance.System
	Storage  appliance.Storage
	Health   appliance.Health
	Database appliance.Database
	Pair     appliance.Pair
	Network  appliance.Network
	Backups  appliance.Backups
	Notify   appliance.Notifications
	Certs    appliance.Certificates
	Firmware appliance.Firmware
	Shares   appliance.Shares
	Clock    appliance.Clock // nil: the clock is not kept (the tests' fakes)
}

// New returns the web UI over the appliance's parts.
func New(p Parts, log *slog.Logger) (*Server, error) {
	s := &Server{auth: p.Auth, sys: p.System, disks: p.Storage, health: p.Health, db: p.Database, pair: p.Pair, net: p.Network, backups: p.Backups, notify: p.Notify, certs: p.Certs, fw: p.Firmware, shares: p.Shares, clock: p.Clock, log: log, closing: make(chan struct{}), pages: map[string]map[string]*template.Template{}}
	s.jobCtx, s.jobStop = context.WithCancel(context.Background())
	funcs := template.FuncMap{
		"percentValue": func(p *float64) string { return fmt.Sprintf("%.1f", *p*100) }, // for attributes
		"deref":        func(p *int64) int64 { return *p },
		"derefFloat":   func(p *float64) float64 { return *p },
		"derefF":       func(p *float64) float64 { return *p },
		"ms":           ms,
		// here marks the navigation's link to the section of the page shown
		"here": func(section, link string) template.HTMLAttr {
			if section == link {
				return ` aria-current="page"`
			}
			return ""
		},
		"now": func() time.Time { return time.Now().UTC() },
		// local is a moment in the office's time zone: pages show local times, the API UTC
		"local":    func(t time.Time) time.Time { return t.In(s.sys.TimeZone()) },
		"jobTitle": func(kind string) string { return jobTitles[kind] },
		"ranges":   func() []string { return []string{"day", "week", ""} },
		"zone":     func() string { return s.sys.TimeZone().String() },
		"zones":    func() []string { return officeZones },
	}
	for _, l := range languages {
		s.pages[l] = map[string]*template.Template{}
		funcs["T"] = translator(l)
		funcs["alert"] = alertText(l)
		funcs["lang"] = func() string { return l }
		funcs["zoneGuess"] = func() string { return zoneGuess[l] }
		funcs["bytes"] = func(n int64) string { return sizeIn(l, n) }
		funcs["duration"] = func(sec int64) string { return durationIn(l, sec) }
		funcs["since"] = func(t time.Time) string { return durationIn(l, int64(time.Since(t).Seconds())) }
		funcs["spaceGraph"] = func(h []appliance.SpacePoint) template.HTML { return spaceSVG(translator(l), h, s.sys.TimeZone()) }
		funcs["percent"] = func(p *float64) string { return decimal(l, *p*100) }
		funcs["pct"] = func(p float64) string { return decimal(l, p) }
		// growth is how much a filesystem's use changed over its history, signed
		funcs["growth"] = func(h []appliance.SpacePoint) string {
			d := h[len(h)-1].UsedBytes - h[0].UsedBytes
			if d < 0 {
				return "-" + sizeIn(l, -d)
			}
			return "+" + sizeIn(l, d)
		}
		for _, p := range []string{"setup", "login", "status", "storage", "disk", "database", "pair", "backups", "documents", "shares", "network", "users", "audit", "alerts", "jobs", "account"} {
			t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/live.html", "templates/"+p+".html")
			if err != nil {
				return nil, fmt.Errorf("parse template %s: %w", p, err)
			}
			s.pages[l][p] = t
		}
	}
	return s, nil
}

// Routes is the route table.
func (s *Server) Routes() []Route {
	return slices.Concat(s.systemRoutes(), s.storageRoutes(), s.databaseRoutes(), s.backupRoutes(), s.shareRoutes(), s.pairRoutes(), s.networkRoutes(), s.accountRoutes(), s.alertRoutes())
}

// systemRoutes: setup, login, the dashboard, power and firmware.
func (s *Server) systemRoutes() []Route {
	return []Route{
		{"GET /{$}", Public, s.pageIndex}, // redirects to setup or login when needed
		{"GET /setup", Public, s.pageSetup},
		{"POST /setup", Public, s.formSetup},
		{"GET /login", Public, s.pageLogin},
		{"POST /login", Public, s.formLogin},
		{"POST /logout", Viewer, s.formLogout},
		{"POST /lang", Public, s.formLang},
		{"POST /system/{action}", Admin, s.formPower},
		{"GET /jobs", Viewer, s.pageJobs},
		{"GET /account", Viewer, s.pageAccount},
		{"GET /api/v1/jobs", Viewer, s.apiJobs},
		{"POST /api/v1/setup", Public, s.apiSetup},
		{"POST /api/v1/login", Public, s.apiLogin},
		{"POST /api/v1/logout", Viewer, s.apiLogout},
		{"GET /api/v1/status", Viewer, s.apiStatus},
		{openAPIRoute, Viewer, s.apiOpenAPI},
		{eventsRoute, Viewer, s.apiEvents},
		{"POST /api/v1/system/{action}", Admin, s.apiPower},
		{"GET /api/v1/system/firmware", Viewer, s.apiFirmware},
		{firmwareUpload, Admin, s.apiUpdateFirmware},
		{"POST /api/v1/system/firmware/rollback", Admin, s.apiRollbackFirmware},
		{"POST /system/firmware", Admin, s.formUpdateFirmware},
		{"POST /system/firmware/rollback", Admin, s.formRollbackFirmware},
	}
}

// storageRoutes: the arrays and the disks.
func (s *Server) storageRoutes() []Route {
	return []Route{
		{"GET /storage", Viewer, s.pageStorage},
		{"POST /storage/scrub", Admin, s.formScrub},
		{"POST /storage/disks/{serial}/adopt", Admin, s.formAdopt},
		{"POST /storage/disks/{serial}/locate", Admin, s.formLocate},
		{"POST /storage/policy", Admin, s.formPolicy},
		{"POST /storage/bays", Admin, s.formBay},
		{"POST /storage/grow", Admin, s.formGrow},
		{"POST /storage/unlock", Admin, s.formUnlock},
		{"POST /storage/recovery-key", Admin, s.formRecoveryKey},
		{"GET /api/v1/storage", Viewer, s.apiStorage},
		{"POST /api/v1/storage/scrub", Admin, s.apiScrub},
		{"POST /api/v1/storage/disks/{serial}/adopt", Admin, s.apiAdopt},
		{"POST /api/v1/storage/disks/{serial}/locate", Admin, s.apiLocate},
		{"PUT /api/v1/storage/policy", Admin, s.apiStoragePolicy},
		{"POST /api/v1/storage/grow", Admin, s.apiGrow},
		{"POST /api/v1/storage/unlock", Admin, s.apiUnlock},
		{"POST /api/v1/storage/recovery-key", Admin, s.apiRecoveryKey},
		{"GET /disks/{serial}", Viewer, s.pageDisk},
		{"POST /disks/{serial}/refresh", Viewer, s.formRefresh},
		{"POST /disks/{serial}/selftest", Admin, s.formSelfTest},
		{"POST /disks/{serial}/alerts/{key}/ack", Admin, s.formAck},
		{"GET /api/v1/disks", Viewer, s.apiDisks},
		{"PUT /api/v1/disks/policy", Admin, s.apiHealthPolicy},
		{"GET /api/v1/disks/{serial}/history", Viewer, s.apiHistory},
		{"POST /api/v1/disks/{serial}/smart/refresh", Viewer, s.apiRefresh},
		{"POST /api/v1/disks/{serial}/smart/selftest", Admin, s.apiSelfTest},
		{"POST /api/v1/disks/{serial}/alerts/{key}/ack", Admin, s.apiAck},
	}
}

// databaseRoutes: the database.
func (s *Server) databaseRoutes() []Route {
	return []Route{
		{"GET /database", Viewer, s.pageDatabase},
		{"POST /database/databases", Admin, s.formCreateDatabase},
		{"GET /api/v1/database", Viewer, s.apiDatabase},
		{"POST /api/v1/database/databases", Admin, s.apiCreateDatabase},
		{"PUT /api/v1/database/databases/{database}/plain", Admin, s.apiSetPlain},
		{"POST /database/databases/{database}/plain", Admin, s.formSetPlain},
		{"PUT /api/v1/database/upstream", Admin, s.apiSetUpstream},
		{"POST /api/v1/database/promote", Admin, s.apiPromote},
		{"PUT /api/v1/database/policy", Admin, s.apiSetPolicy},
		{"POST /database/policy", Admin, s.formSetPolicy},
		{"POST /database/promote", Admin, s.formPromote},
		{"POST /database/upstream", Admin, s.formSetUpstream},
		{"POST /database/set-aside/delete", Admin, s.formDeleteSetAside},
		{"DELETE /api/v1/database/set-aside/{name}", Admin, s.apiDeleteSetAside},
		{"POST /database/start-afresh", Admin, s.formStartAfresh},
		{"POST /api/v1/database/start-afresh", Admin, s.apiStartAfresh},
		{"GET /database/databases/{database}/export", Admin, s.export},
		{"GET /api/v1/database/databases/{database}/export", Admin, s.export},
	}
}

// backupRoutes: the backups.
func (s *Server) backupRoutes() []Route {
	return []Route{
		{"GET /backups", Viewer, s.pageBackups},
		{"POST /backups/identity", Admin, s.formBackupIdentity},
		{"POST /backups/run", Admin, s.formRunBackup},
		{"POST /backups/targets", Admin, s.formBackupTarget},
		{"POST /backups/{id}/verify", Admin, s.formVerifyBackup},
		{"POST /backups/{id}/restore", Admin, s.formRestoreBackup},
		{"POST /backups/{id}/config/restore", Admin, s.formRestoreConfig},
		{"POST /backups/point-in-time", Admin, s.formPointInTime},
		{"POST /backups/retention", Admin, s.formBackupRetention},
		{"POST /backups/identity/import", Admin, s.formImportIdentity},
		{"POST /backups/documents", Admin, s.formDocumentFolders},
		{"GET /backups/{id}/documents", Admin, s.pageDocuments},
		{"GET /backups/{id}/document", Admin, s.downloadDocument},
		{"GET /api/v1/backups", Viewer, s.apiBackups},
		{"POST /api/v1/backups/identity", Admin, s.apiBackupIdentity},
		{"PUT /api/v1/backups/targets", Admin, s.apiBackupTargets},
		{"POST /api/v1/backups/run", Admin, s.apiRunBackup},
		{"POST /api/v1/backups/{id}/verify", Admin, s.apiVerifyBackup},
		{"POST /api/v1/backups/{id}/restore", Admin, s.apiRestoreBackup},
		{"POST /api/v1/backups/{id}/config/restore", Admin, s.apiRestoreConfig},
		{"POST /api/v1/backups/point-in-time", Admin, s.apiPointInTime},
		{"PUT /api/v1/backups/retention", Admin, s.apiBackupRetention},
		{"POST /api/v1/backups/identity/import", Admin, s.apiImportIdentity},
		{"PUT /api/v1/backups/documents", Admin, s.apiDocumentFolders},
		{"GET /api/v1/backups/{id}/documents", Admin, s.apiDocuments},
		{"GET /api/v1/backups/{id}/document", Admin, s.downloadDocument},
	}
}

// pairRoutes: the pair.
func (s *Server) pairRoutes() []Route {
	return []Route{
		{"GET /pair", Viewer, s.pagePair},
		{"POST /pair/invite", Admin, s.formInvite},
		{"POST /pair/join", Admin, s.formJoin},
		{"POST /pair/unpair", Admin, s.formUnpair},
		{"POST /pair/role", Admin, s.formPairRole},
		{"POST /pair/maintenance", Admin, s.formMaintenance},
		{"POST /api/v1/pair/maintenance", Admin, s.apiMaintenance},
		{"GET /api/v1/pair", Viewer, s.apiPair},
		{"POST /api/v1/pair/invite", Admin, s.apiInvite},
		{"POST /api/v1/pair/join", Admin, s.apiJoin},
		{"DELETE /api/v1/pair", Admin, s.apiUnpair},
		{"POST /api/v1/pair/role", Admin, s.apiPairRole},
		{"GET /api/v1/pair/witness-key", Admin, s.apiWitnessKey},
	}
}

// accountRoutes: users, sessions, second factors, the audit log and the certificate.
func (s *Server) accountRoutes() []Route {
	return []Route{
		{"GET /users", Admin, s.pageUsers},
		{"POST /users", Admin, s.formAddUser},
		{"POST /users/{name}/delete", Admin, s.formDeleteUser},
		{"POST /users/{name}/password", Viewer, s.formSetPassword},
		{"POST /sessions/end", Viewer, s.formEndSessions},
		{"POST /account/totp", Viewer, s.formBeginTOTP},
		{"POST /account/totp/confirm", Viewer, s.formConfirmTOTP},
		{"POST /account/totp/off", Viewer, s.formDisableTOTP},
		{"POST /api/v1/users/{name}/totp", Viewer, s.apiBeginTOTP},
		{"PUT /api/v1/users/{name}/totp", Viewer, s.apiConfirmTOTP},
		{"DELETE /api/v1/users/{name}/totp", Viewer, s.apiDisableTOTP},
		{"GET /audit", Admin, s.pageAudit},
		{"POST /users/tls", Admin, s.formSetCertificate},
		{"POST /users/timezone", Admin, s.formTimeZone},
		{"PUT /api/v1/system/time-zone", Admin, s.apiSetTimeZone},
		{"POST /users/tls/reset", Admin, s.formResetCertificate},
		{"GET /api/v1/tls", Viewer, s.apiCertificate},
		{"PUT /api/v1/tls", Admin, s.apiSetCertificate},
		{"DELETE /api/v1/tls", Admin, s.apiResetCertificate},
		{"GET /api/v1/users", Admin, s.apiUsers},
		{"POST /api/v1/users", Admin, s.apiAddUser},
		{"DELETE /api/v1/users/{name}", Admin, s.apiDeleteUser},
		{"PUT /api/v1/users/{name}/password", Viewer, s.apiSetPassword},
		{"POST /api/v1/sessions/end", Viewer, s.apiEndSessions},
		{"GET /api/v1/audit", Admin, s.apiAudit},
		{"GET /api/v1/audit/verify", Admin, s.apiVerifyAudit},
	}
}

// alertRoutes: alerts, notifications and metrics.
func (s *Server) alertRoutes() []Route {
	return []Route{
		{metricsRoute, Viewer, s.metrics},
		{"GET /alerts", Viewer, s.pageAlerts},
		{"POST /alerts/notifications", Admin, s.formNotifications},
		{"POST /alerts/test", Admin, s.formTestNotification},
		{"POST /alerts/ack", Admin, s.formAckAlert},
		{"POST /alerts/unack", Admin, s.formUnackAlert},
		{"GET /api/v1/alerts", Viewer, s.apiAlerts},
		{"POST /api/v1/alerts/ack", Admin, s.apiAckAlert},
		{"POST /api/v1/alerts/unack", Admin, s.apiUnackAlert},
		{"GET /api/v1/notifications", Admin, s.apiNotifications},
		{"PUT /api/v1/notifications", Admin, s.apiSetNotifications},
		{"POST /api/v1/notifications/test", Admin, s.apiTestNotification},
	}
}

// Handler returns the whole UI: routes, static files, security headers, size limits and cross-origin
// (CSRF) protection.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.Routes() {
		mux.Handle(rt.Pattern, s.guard(rt))
	}
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
	}))
	return headers(cop.Handler(mux))
}

func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// guard checks the route's access level before calling it, and writes the audit log: every request that
// changes something (any method but GET) and every admin-only read, with who, from where, and the answer.
func (s *Server) guard(rt Route) http.Handler {
	// /metrics also takes a viewer's password by basic auth (Prometheus), and answers 401 like the API.
	basic := rt.Pattern == metricsRoute
	api := strings.Contains(rt.Pattern, " /api/") || basic
	audited := rt.Access == Admin || !strings.HasPrefix(rt.Pattern, "GET ")
	login := loginRoutes[rt.Pattern]
	limit, big := largeBodies[rt.Pattern]
	if !big {
		limit = MaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		var sess appliance.Session
		authenticated := false
		if audited {
			rec := &recorder{ResponseWriter: w, status: http.StatusOK}
			who := new(string)
			r = r.WithContext(context.WithValue(r.Context(), auditKey{}, who))
			defer func() {
				// What users did goes to the audit log; a request that did not authenticate (but a login
				// or setup that succeeded) to the noise log.
				noise := !authenticated && !(login && rec.status < 400)
				e := appliance.AuditEntry{Time: time.Now().UTC(), User: *who, Remote: remote(r), Action: rt.Pattern, Path: r.URL.RequestURI(), Status: rec.status, Noise: noise}
				if err := s.auth.Record(e); err != nil {
					s.log.Error("audit log", "entry", e, "err", err)
				}
			}()
			w = rec
		}
		if rt.Access != Public {
			var err error
			if user, pass, ok := r.BasicAuth(); ok && basic {
				// Prometheus: a viewer account's password on each scrape (rate-limited like a login)
				sess, err = s.auth.Check(user, pass, remote(r))
			} else if rt.Pattern == eventsRoute {
				sess, err = s.auth.Current(token(r))
			} else {
				sess, err = s.auth.Authenticate(token(r))
			}
			if err != nil {
				if api {
					if basic {
						w.Header().Set("WWW-Authenticate", `Basic realm="lawbox metrics"`)
					}
					writeError(w, http.StatusUnauthorized, appliance.ErrUnauthenticated.Error())
				} else {
					http.Redirect(w, r, "/login", http.StatusSeeOther)
				}
				return
			}
			auditUser(r, sess.User)
			authenticated = true
			if rt.Access == Admin && sess.Role != appliance.RoleAdmin {
				s.fail(w, r, appliance.ErrForbidden)
				return
			}
		}
		rt.Handler(w, r, sess)
	})
}

// loginRoutes open a session (or set the unit up): one that succeeds belongs in the audit log.
var loginRoutes = map[string]bool{"POST /login": true, "POST /api/v1/login": true, "POST /setup": true, "POST /api/v1/setup": true}

type auditKey struct{}

// auditUser names who a request acts for in the audit log (the session's user; for a login, the name tried).
func auditUser(r *http.Request, name string) {
	if p, ok := r.Context().Value(auditKey{}).(*string); ok {
		*p = name
	}
}

// recorder keeps the status a handler answered, for the audit log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// token returns the bearer token, or the session cookie's value.
func token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

func remote(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// statusOf maps an appliance error to an HTTP status and the message a client may see.
func statusOf(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, errBadRequest), errors.Is(err, appliance.ErrWeakPassword), errors.Is(err, appliance.ErrBadInput):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, appliance.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, appliance.ErrAlreadySetUp), errors.Is(err, appliance.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, appliance.ErrBadSetupCode), errors.Is(err, appliance.ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, appliance.ErrBadCredentials), errors.Is(err, appliance.ErrUnauthenticated):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, appliance.ErrRateLimited):
		return http.StatusTooManyRequests, err.Error()
	case errors.Is(err, appliance.ErrUnavailable):
		return http.StatusServiceUnavailable, err.Error()
	}
	return http.StatusInternalServerError, "internal error (details are in the unit's log)"
}

var errBadRequest = errors.New("malformed request")

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := statusOf(err)
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var rl *appliance.RateLimitError
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", fmt.Sprint(int(rl.RetryAfter.Seconds()+0.999)))
	}
	writeError(w, code, msg)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v: unknown fields, trailing data and oversized bodies are errors.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%w: Content-Type must be application/json", errBadRequest)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON object", errBadRequest)
	}
	return nil
}

func setCookie(w http.ResponseWriter, s appliance.Session) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: s.Token, Path: "/", Expires: s.Expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}
