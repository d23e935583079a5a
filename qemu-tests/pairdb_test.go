package qemutests

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

type dbStatus struct {
	Role           string   `json:"role"`
	State          string   `json:"state"`
	Upstream       string   `json:"upstream"`
	Sync           string   `json:"sync"`
	Mirror         string   `json:"mirror"`
	LagBytes       *int64   `json:"lag_bytes"`
	LagSeconds     *float64 `json:"lag_seconds"`
	LastPromotionS float64  `json:"last_promotion_s"`
}

func (p *pairUnit) db() (dbStatus, error) {
	var st dbStatus
	code, body := p.call("GET", "/api/v1/database", p.tok, "")
	if code != 200 {
		return st, fmt.Errorf("GET /api/v1/database = %d %s", code, body)
	}
	return st, json.Unmarshal([]byte(body), &st)
}

func (p *pairUnit) waitDB(t testing.TB, what string, timeout time.Duration, ok func(dbStatus) bool) dbStatus {
	t.Helper()
	var st dbStatus
	eventually(t, timeout, what, func() error {
		var err error
		if st, err = p.db(); err != nil {
			return err
		}
		if !ok(st) {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	return st
}

var (
	reLoadCommits  = regexp.MustCompile(`debug: pgload commits (\d+) at (\d+)`)
	reLoadResumed  = regexp.MustCompile(`debug: pgload resumed at (\d+)`)
	reLoadSQLError = regexp.MustCompile(`debug: pgload sql error (\w+) at \d+: (.*)`)
	reLoadAcked    = regexp.MustCompile(`debug: pgload acked (\S+)`)
)

// parseRanges reads "1-530,532-900".
func parseRanges(s string) ([]int64, error) {
	var ids []int64
	if s == "none" {
		return nil, nil
	}
	for _, r := range strings.Split(s, ",") {
		lo, hi, ok := strings.Cut(r, "-")
		a, err1 := strconv.ParseInt(lo, 10, 64)
		b, err2 := strconv.ParseInt(hi, 10, 64)
		if !ok || err1 != nil || err2 != nil || b < a {
			return nil, fmt.Errorf("range %q", r)
		}
		for i := a; i <= b; i++ {
			ids = append(ids, i)
		}
	}
	return ids, nil
}

// dbLab is a pair lab whose production database (on A) holds the table the office PC's load writes to
// through the service address.
type dbLab struct {
	*pairLab
	conn string // the application's connection string (credentials; the host is replaced)
}

// mirrorsPartner: the unit's database is a running mirror of the other unit's.
func mirrorsPartner(s dbStatus) bool {
	return s.Role == "mirror" && s.State == "running" && strings.HasPrefix(s.Upstream, "partner unit")
}

func newDBLab(t testing.TB, sync bool) *dbLab { return newDBLabOn(t, newPairLab(t, 800), sync) }

// newDBLabOn makes a database on the lab's pair, mirrored in synchronous mode or not, with a load table.
func newDBLabOn(t testing.TB, pl *pairLab, sync bool) *dbLab {
	l := &dbLab{pairLab: pl}
	l.a.waitDB(t, "production on A", 3*time.Minute, func(s dbStatus) bool { return s.Role == "production" && s.State == "running" })
	code, body := l.a.call("POST", "/api/v1/database/databases", l.a.tok, `{"name":"practice","owner":"practice_app"}`)
	var nd newDatabase
	if code != 201 || json.Unmarshal([]byte(body), &nd) != nil {
		t.Fatalf("create = %d %s", code, body)
	}
	l.conn = nd.URL
	l.a.exec(t, nd.URL, "CREATE TABLE load (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
	if code, body := l.a.call("PUT", "/api/v1/database/policy", l.a.tok, fmt.Sprintf(`{"sync":%v,"degrade_after_s":10}`, sync)); code != 204 {
		t.Fatalf("policy = %d %s", code, body)
	}
	l.b.waitDB(t, "B mirrors A", 5*time.Minute, mirrorsPartner)
	want := map[bool]string{true: "sync", false: "async"}[sync]
	l.a.waitDB(t, "A streams to B", 2*time.Minute, func(s dbStatus) bool {
		return s.Sync == want && strings.HasPrefix(s.Mirror, "streaming from")
	})
	return l
}

// serviceURL is the application's connection string through the service address.
func (l *dbLab) serviceURL() string {
	p, _ := url.Parse(l.conn)
	p.Host = "192.0.2.100:5432"
	q := p.Query()
	q.Set("connect_timeout", "2")
	p.RawQuery = q.Encode()
	return p.String()
}

// rows returns the ids in the load table on u.
func (l *dbLab) rows(t testing.TB, u *pairUnit) map[int64]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := u.connect(ctx, l.conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rs, err := c.Query(ctx, "SELECT id FROM load")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int64]bool{}
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// startLoad starts the office PC's load through the service address and waits for its first 100 commits.
func (l *dbLab) startLoad(t testing.TB) {
	t.Helper()
	l.pc.console("pgload "+l.serviceURL(), regexp.MustCompile(`debug: pgload started`))
	l.waitCommits(t, 100)
}

// waitCommits waits until the load has committed at least n rows since it started.
func (l *dbLab) waitCommits(t testing.TB, n int) {
	t.Helper()
	for {
		m, err := l.pc.Expect(reLoadCommits, 2*time.Minute)
		if err != nil {
			t.Fatalf("the load does not commit: %v", err)
		}
		if got, _ := strconv.Atoi(m[1]); got >= n {
			return
		}
	}
}

// commitLatency is the load's mean time per commit (one after another, each acknowledged before the
// next) over its next n commits, on the PC's clock.
func (l *dbLab) commitLatency(t testing.TB, n int) time.Duration {
	t.Helper()
	var first, last [2]int
	for i := 0; ; i++ {
		m, err := l.pc.Expect(reLoadCommits, 2*time.Minute)
		if err != nil {
			t.Fatalf("the load does not commit: %v", err)
		}
		last[0], _ = strconv.Atoi(m[1])
		last[1], _ = strconv.Atoi(m[2])
		if i == 0 {
			first = last
		} else if last[0]-first[0] >= n {
			return time.Duration(last[1]-first[1]) * time.Millisecond / time.Duration(last[0]-first[0])
		}
	}
}

// resumed waits for the load's first commit after a failure and returns it on the PC's clock since mark.
func (l *dbLab) resumed(t testing.TB, mark int) time.Duration {
	t.Helper()
	m, err := l.pc.Expect(reLoadResumed, 3*time.Minute)
	if err != nil {
		t.Fatalf("the load never committed again: %v", err)
	}
	at, _ := strconv.Atoi(m[1])
	return time.Duration(at-mark) * time.Millisecond
}

// stopLoad stops the load and counts the commits acknowledged to it that u does not have.
func (l *dbLab) stopLoad(t testing.TB, u *pairUnit) (acked, lost int) {
	t.Helper()
	ids, err := parseRanges(l.pc.console("pgload stop", reLoadAcked)[1])
	if err != nil {
		t.Fatal(err)
	}
	have := l.rows(t, u)
	for _, id := range ids {
		if !have[id] {
			lost++
		}
	}
	return len(ids), lost
}

// failover kill -9s the production unit under the load and returns the client's outage (kill to its
// first commit on the survivor).
func (l *dbLab) failover(t testing.TB, production *pairUnit) time.Duration {
	t.Helper()
	if err := production.Kill9(); err != nil {
		t.Fatal(err)
	}
	mark, _ := strconv.Atoi(l.pc.console("mark", reMark)[1])
	outage := l.resumed(t, mark)
	l.waitCommits(t, 0) // and it goes on
	return outage
}

// The database follows the pair. Synchronous mode, the office PC committing through the service address:
// kill -9 of the production unit, B takes over and is promoted by itself (automatic mode), the load goes
// on, and every commit the client saw acknowledged is on B. A comes back, rewinds and mirrors B; then a
// promotion from A's API (the planned switchover) makes A production again and B its mirror. Last, the unit
// with the older copy, back alone, is refused the active role.
func TestPairDatabase(t *testing.T) {
	alone(t)
	l := newDBLab(t, true)
	chk := startChecker(t, l.a, l.b)
	defer chk.finish()

	l.startLoad(t)
	l.waitCommits(t, 200)
	// A backup's dump on the mirror is not cancelled by production's vacuum, and does not hold up the
	// promotion below.
	rctx, reader, endReader := l.readerOnTheMirror(t, l.a, l.b)
	defer endReader()
	// A client waiting for an answer (a long query, TCP keep-alive off) sends nothing that could tell it A
	// died: B, taking over, tickles the connections A listed in its heartbeats, and the client sees a reset.
	l.pc.console("pgwait "+l.serviceURL(), regexp.MustCompile(`debug: pgwait waiting`))
	time.Sleep(1500 * time.Millisecond) // in A's list (every second) and its heartbeats
	outage := l.failover(t, l.a)
	if _, err := reader.Exec(rctx, "SELECT 1"); err == nil {
		t.Error("the reader on the mirror is still connected after its promotion")
	}
	acked, lost := l.stopLoad(t, l.b)
	t.Logf("failover under load (synchronous): client outage %v, %d commits acknowledged, %d lost", outage, acked, lost)
	eventually(t, time.Minute, "the waiting client learns that A died", func() error {
		out := l.pc.Console()
		m := regexp.MustCompile(`debug: pgwait ended at (\d+): (.*)`).FindStringSubmatch(out)
		if m == nil {
			return errors.New("still waiting")
		}
		// Its 10-minute query ended with the connection: a reset, which pgx reports as "conn closed".
		if !strings.Contains(m[2], "reset") && !strings.Contains(m[2], "conn closed") {
			t.Fatalf("the waiting client ended with %q, want its connection reset", m[2])
		}
		marks := regexp.MustCompile(`debug: mark (\d+)`).FindAllStringSubmatch(out, -1)
		end, _ := strconv.Atoi(m[1])
		kill, _ := strconv.Atoi(marks[len(marks)-1][1])
		t.Logf("the waiting client saw a reset %v after the kill", time.Duration(end-kill)*time.Millisecond)
		return nil
	})
	if lost != 0 {
		t.Errorf("%d acknowledged commits lost in synchronous mode", lost)
	}
	st := l.b.waitDB(t, "B production", time.Minute, func(s dbStatus) bool { return s.Role == "production" && s.State == "running" })
	if st.LastPromotionS <= 0 {
		t.Errorf("B does not report its promotion: %+v", st)
	}

	l.returnsAndRewinds(t, chk)
	want := l.switchOverUnderLoad(t)

	// The older copy never serves. B (the mirror) dies; A goes on alone and writes; A dies; B comes back
	// alone: it must not become production with a copy that lacks A's last rows (A's return would then
	// rewind them away). When A returns, A is production with every row and B mirrors it.
	if err := l.b.Kill9(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "A sees B gone", func() error {
		if st := l.a.mustPair(); st.Peer == nil || st.Peer.Reachable {
			return fmt.Errorf("peer %+v", st.Peer)
		}
		return nil
	})
	l.a.waitDB(t, "A commits without its mirror", time.Minute, func(s dbStatus) bool { return s.Sync == "degraded" })
	l.a.exec(t, l.conn, "INSERT INTO load (id) SELECT generate_series(-100, -1)")
	time.Sleep(3 * time.Second) // A's lease renewals carry the news to the witness (within 2 x 800 ms)
	if err := l.a.Kill9(); err != nil {
		t.Fatal(err)
	}
	l.b = l.restart(t, l.b, "unit-b", l.bDisk)
	chk.set(1, l.b)
	eventually(t, 2*time.Minute, "the witness refuses B", func() error {
		if st := l.b.mustPair(); st.Witness == nil || !st.Witness.Stale {
			return fmt.Errorf("witness %+v, role %s", st.Witness, st.Role)
		}
		return nil
	})
	time.Sleep(5 * time.Second)
	if st := l.b.mustPair(); st.Role == "active" {
		t.Fatalf("B came back alone with an older copy and became active")
	}
	if st, err := l.b.db(); err != nil || st.Role == "production" {
		t.Fatalf("B's database: %+v %v", st, err)
	}
	l.a = l.restart(t, l.a, "unit-a", l.aDisk)
	chk.set(0, l.a)
	waitRoles(t, "A back: the newer copy is active", 2*time.Minute, l.a, l.b, "active", "standby")
	l.b.waitDB(t, "B mirrors A again", 5*time.Minute, mirrorsPartner)
	eventually(t, time.Minute, "A's rows written alone reach B", func() error {
		for _, u := range []*pairUnit{l.a, l.b} {
			if got := l.rows(t, u); len(got) != len(want)+100 {
				return fmt.Errorf("%d rows on %s, want %d", len(got), u.Name(), len(want)+100)
			}
		}
		return nil
	})
}

// backupOnTheMirror: "back up now" asked on production is taken by the mirror (over the pair link, while
// the office's load runs): the answer names the mirror, and the mirror lists the backup.
func (l *dbLab) backupOnTheMirror(t *testing.T, production, mirror *pairUnit) {
	t.Helper()
	if code, body := production.call("POST", "/api/v1/backups/identity", production.tok, ""); code != 201 {
		t.Fatalf("recovery identity on production = %d %s", code, body)
	}
	timeout := production.http.Timeout
	production.http.Timeout = 5 * time.Minute // the answer comes when the mirror has the backup
	code, body := production.call("POST", "/api/v1/backups/run", production.tok, "")
	production.http.Timeout = timeout
	var b struct {
		ID      string `json:"id"`
		TakenOn string `json:"taken_on"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &b) != nil || b.ID == "" || b.TakenOn == "" {
		t.Fatalf("back up now on production = %d %s", code, body)
	}
	var st struct {
		Backups []struct {
			ID string `json:"id"`
		} `json:"backups"`
	}
	mirror.get("/api/v1/backups", mirror.tok, &st)
	if len(st.Backups) != 1 || st.Backups[0].ID != b.ID {
		t.Errorf("the mirror lists %+v, want the backup %s taken on production's request", st.Backups, b.ID)
	}
	t.Logf("back up now on production: backup %s taken by the mirror %s", b.ID, b.TakenOn)
	documentsOnTheMirror(t, production, mirror)
}

// documentsOnTheMirror: a document stored through a share on production is in the documents backup the
// mirror takes (no folder set: the shares) from a snapshot of its replicated copy, with the same bytes,
// and the replication goes on.
func documentsOnTheMirror(t *testing.T, production, mirror *pairUnit) {
	for _, c := range []struct{ path, body string }{
		{"/api/v1/file-accounts/marie", `{"password":"Marie's long password"}`},
		{"/api/v1/shares/Clients", `{"read_write":["marie"]}`},
	} {
		if code, body := production.call("PUT", c.path, production.tok, c.body); code/100 != 2 {
			t.Fatalf("%s on production = %d %s", c.path, code, body)
		}
	}
	eventually(t, 3*time.Minute, "the mirror's documents copy complete", documentsInSync(production))
	dir := t.TempDir()
	var stored [32]byte
	eventually(t, time.Minute, "a document stored on production", func() error {
		if _, err := smbAt(production.SMB, "Clients", "marie", "Marie's long password", "-c", "ls"); err != nil {
			return err // the server may still be reading its new share
		}
		stored = putDocument(t, production.SMB, dir, "brief.odt")
		return nil
	})
	// The mirror takes one backup at a time, and its scheduled base copy may be under way: a copy taken on
	// a mirror ends when production ends its WAL segment (archive_timeout, 5 minutes at most).
	timeout := production.http.Timeout
	production.http.Timeout = 10 * time.Minute
	code, body := production.call("POST", "/api/v1/backups/run", production.tok, `{"kind":"documents"}`)
	production.http.Timeout = timeout
	var b struct {
		ID      string `json:"id"`
		TakenOn string `json:"taken_on"`
		Files   int    `json:"files"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &b) != nil || b.TakenOn != mirror.Name() || b.Files != 1 {
		t.Fatalf("documents backup on production = %d %s, want one file taken on %s", code, body, mirror.Name())
	}
	code, doc := mirror.call("GET", "/api/v1/backups/"+b.ID+"/document?path="+url.QueryEscape("/data/documents/Clients/brief.odt"), mirror.tok, "")
	if code != 200 || sha256.Sum256([]byte(doc)) != stored {
		t.Errorf("the document from the mirror's backup = %d, %d bytes, not the bytes stored on production", code, len(doc))
	}
	if err := documentsInSync(production)(); err != nil {
		t.Errorf("the replication after the backup: %v", err)
	}
	t.Logf("documents backup taken by the mirror %s from a snapshot of its copy: %s", b.TakenOn, b.ID)
}

// readerOnTheMirror holds a table on the mirror as a backup's dump does (a read-only repeatable-read
// transaction that read it) while production deletes half of it and vacuums it, which truncates the
// table's empty end: a lock the reader conflicts with, replayed on the mirror. PostgreSQL's default
// cancels such a reader after 30 s ("User was holding a relation lock for too long"): here it reads on
// 40 s later, and the office's load, in synchronous mode, commits meanwhile. It returns the reader, still
// in its transaction, with its end: the failover that follows must not wait for it.
func (l *dbLab) readerOnTheMirror(t *testing.T, production, mirror *pairUnit) (context.Context, pgx.Tx, func()) {
	t.Helper()
	production.exec(t, l.conn, "CREATE TABLE old_files AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 20000) g")
	production.exec(t, l.conn, "DELETE FROM old_files WHERE id > 10000")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	count := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (int, error) {
		var n int
		err := q.QueryRow(ctx, "SELECT count(*) FROM old_files").Scan(&n)
		return n, err
	}
	c, err := mirror.connect(ctx, l.conn)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the delete replayed on the mirror", func() error {
		if n, err := count(c); err != nil || n != 10000 {
			return fmt.Errorf("%d rows, %v", n, err)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // the mirror's feedback (every second) moves past the delete
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := count(tx); err != nil || n != 10000 {
		t.Fatalf("the reader on the mirror: %d rows, %v", n, err)
	}
	p, err := production.connect(ctx, l.conn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	size := func() (n int64) {
		if err := p.QueryRow(ctx, "SELECT pg_relation_size('old_files')").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := size()
	// The precondition of the proof: the vacuum truncated the table (else nothing conflicted).
	eventually(t, time.Minute, "production's vacuum truncates the table", func() error {
		if _, err := p.Exec(ctx, "VACUUM old_files"); err != nil {
			return err
		}
		if after := size(); after >= before {
			return fmt.Errorf("%d bytes before, %d after", before, after)
		}
		return nil
	})
	time.Sleep(40 * time.Second)
	if n, err := count(tx); err != nil || n != 10000 {
		t.Fatalf("the reader on the mirror 40 s after production's vacuum: %d rows, %v (cancelled by the replay?)", n, err)
	}
	if s := production.waitDB(t, "production synchronous", 5*time.Second, func(s dbStatus) bool { return true }); s.Sync != "sync" {
		t.Errorf("production's replication while the mirror's replay waits for the reader: %q, want sync", s.Sync)
	}
	l.waitCommits(t, 0)
	var lag int64
	if s := mirror.waitDB(t, "mirror", 5*time.Second, func(dbStatus) bool { return true }); s.LagBytes != nil {
		lag = *s.LagBytes
	}
	t.Logf("a reader on the mirror outlived production's vacuum truncating its table by 40 s; the mirror's replay waits for it, %d bytes behind", lag)
	return ctx, tx, func() { cancel(); c.Close(context.Background()) }
}

// switchOverUnderLoad: a planned switchover from A's database page, under the office's load: A production, B
// mirror, nothing lost, and the client meets dropped connections only, never an answer such as "read-only
// transaction" from a unit that holds the service address while it cannot write. It answers B's rows.
func (l *dbLab) switchOverUnderLoad(t *testing.T) map[int64]bool {
	l.startLoad(t)
	l.backupOnTheMirror(t, l.b, l.a)
	from := len(l.pc.Console())
	code, body := l.a.call("POST", "/api/v1/database/promote", l.a.tok, "")
	if code != 200 {
		t.Fatalf("promote A = %d %s", code, body)
	}
	t.Logf("switchover to A: %s", body)
	waitRoles(t, "after the promotion of A", 30*time.Second, l.a, l.b, "active", "standby")
	l.waitCommits(t, 0)
	l.b.waitDB(t, "B mirrors A", 5*time.Minute, mirrorsPartner)
	acked, lost := l.stopLoad(t, l.a)
	t.Logf("switchover under load: %d commits acknowledged, %d lost", acked, lost)
	if lost != 0 {
		t.Errorf("%d acknowledged commits lost in the switchover", lost)
	}
	for _, m := range reLoadSQLError.FindAllStringSubmatch(l.pc.Console()[from:], -1) {
		if class := m[1][:2]; class != "57" && class != "08" { // shutting down, starting up, connection lost
			t.Errorf("the client got an SQL error through the service address during the switchover: %s %s", m[1], m[2])
		}
	}
	want := l.rows(t, l.b)
	if got := l.rows(t, l.a); len(got) != len(want) {
		t.Errorf("%d rows on A after the switchover, %d on B", len(got), len(want))
	}
	return want
}

// returnsAndRewinds: A returns: standby, and its database rewinds and mirrors B.
func (l *dbLab) returnsAndRewinds(t *testing.T, chk *overlapChecker) {
	l.a = l.restart(t, l.a, "unit-a", l.aDisk)
	chk.set(0, l.a)
	l.a.waitDB(t, "A mirrors B", 5*time.Minute, mirrorsPartner)
	want := l.rows(t, l.b)
	eventually(t, time.Minute, "A has B's rows", func() error {
		if got := l.rows(t, l.a); len(got) != len(want) {
			return fmt.Errorf("%d rows on A, %d on B", len(got), len(want))
		}
		return nil
	})
	if code, body := l.a.call("POST", "/api/v1/database/databases", l.a.tok, `{"name":"other","owner":"other_app"}`); code != 409 {
		t.Errorf("create a database on the mirror = %d %s", code, body)
	}
}
