package webui

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

func TestPairAPIAndPage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	if w := e.do(req{method: "GET", path: "/api/v1/pair", hdr: bearer}); w.Code != 200 || !strings.Contains(w.Body.String(), `"role":"single"`) {
		t.Errorf("pair = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/invite", hdr: bearer, body: `{"mode":"auto"}`}); w.Code != 400 {
		t.Errorf("invite without a service address = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/invite", hdr: bearer, body: `{"vip":"192.0.2.100/24","mode":"auto","witness":"192.0.2.30:7947"}`}); w.Code != 201 || !strings.Contains(w.Body.String(), `"code":"ABCD-`) {
		t.Errorf("invite = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/join", hdr: bearer, body: `{"peer":"192.0.2.11","code":"WRONG"}`}); w.Code != 503 {
		t.Errorf("join with a wrong code = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/join", hdr: bearer, body: `{"peer":"192.0.2.11","code":"ABCD-EFGH-IJKL-MNOP"}`}); w.Code != 200 || !strings.Contains(w.Body.String(), `"paired":true`) {
		t.Errorf("join = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/role", hdr: bearer, body: `{"role":"boss"}`}); w.Code != 400 {
		t.Errorf("bad role = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/role", hdr: bearer, body: `{"role":"active","force":true}`}); w.Code != 202 || len(e.pair.roles) != 1 {
		t.Errorf("role = %d %v", w.Code, e.pair.roles)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/network", hdr: bearer, body: `{"ports":[{"name":"eth1","addresses":["192.0.2.11/24"],"dns":["192.0.2.53"]}]}`}); w.Code != 200 || len(e.net.ports) != 1 ||
		!strings.Contains(w.Body.String(), `"nameservers":["192.0.2.53"]`) {
		t.Errorf("network = %d %s", w.Code, w.Body)
	}
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	body := e.do(req{method: "GET", path: "/pair", hdr: cookie}).Body.String()
	for _, want := range []string{"unit-b", `action="/pair/role"`, `action="/pair/unpair"`, "witness -key-file", `href="/network"`} {
		if !strings.Contains(body, want) {
			t.Errorf("pair page lacks %q", want)
		}
	}
	body = e.do(req{method: "GET", path: "/network", hdr: cookie}).Body.String()
	for _, want := range []string{"192.0.2.11/24", "192.0.2.53", `action="/network"`, `action="/network/dhcp"`, `aria-current="page"`} {
		if !strings.Contains(body, want) {
			t.Errorf("network page lacks %q", want)
		}
	}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if e.do(req{method: "POST", path: "/pair/unpair", hdr: form, body: "confirm=no"}); !e.pair.st.Paired {
		t.Error("unpaired without the confirmation")
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/pair", hdr: bearer}); w.Code != 204 || e.pair.st.Paired {
		t.Errorf("unpair = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/pair/invite", hdr: form, body: "vip=192.0.2.100%2F24&mode=manual"}); !strings.Contains(w.Body.String(), "ABCD-EFGH-IJKL-MNOP") || e.pair.settings.Mode != "manual" {
		t.Errorf("invite form did not show the code")
	}
	// A port that lost its link: an alert on the dashboard, the state on the pair page and in the API.
	e.net.links = []appliance.NetworkLink{{Name: "eth1", MAC: "52:54:00:12:34:56", Carrier: true, Seen: true, Since: time.Now()},
		{Name: "eth2", MAC: "52:54:00:12:34:57", Seen: true, Since: time.Now()}, {Name: "eth3", MAC: "52:54:00:12:34:58"}}
	if body := e.do(req{method: "GET", path: "/", hdr: cookie}).Body.String(); !strings.Contains(body, "network port eth2 (52:54:00:12:34:57) lost its link") ||
		strings.Contains(body, "network port eth3") {
		t.Errorf("the dashboard does not warn of eth2's link alone")
	}
	if body := e.do(req{method: "GET", path: "/network", hdr: cookie}).Body.String(); strings.Count(body, "no link") != 2 || !strings.Contains(body, "connected") {
		t.Errorf("network page link states wrong")
	}
	if w := e.do(req{method: "GET", path: "/api/v1/network", hdr: bearer}); !strings.Contains(w.Body.String(), `"name":"eth2","mac":"52:54:00:12:34:57","carrier":false,"seen":true`) {
		t.Errorf("network API = %s", w.Body)
	}
	e.do(req{method: "POST", path: "/network", hdr: form, body: "name=bond0&address=198.51.100.1%2F24&dns=192.0.2.54%2C+192.0.2.55&members=eth2+eth3"})
	if got := e.net.ports; len(got) != 2 || got[1].Name != "bond0" || !slices.Equal(got[1].DNS, []string{"192.0.2.54", "192.0.2.55"}) ||
		!slices.Equal(got[1].Members, []string{"eth2", "eth3"}) {
		t.Errorf("network form: ports %+v", got)
	}
	// The form's change is on probation: the page says until when and offers to keep it; another change
	// waits; once kept, a port goes back to DHCP (on probation too).
	body = e.do(req{method: "GET", path: "/network", hdr: cookie}).Body.String()
	if e.net.trial == nil || e.net.trial.By != "admin" || !strings.Contains(body, `id="network-trial"`) || !strings.Contains(body, `action="/network/confirm"`) {
		t.Errorf("the change is not on probation: %+v", e.net.trial)
	}
	if w := e.do(req{method: "POST", path: "/network/dhcp", hdr: form, body: "name=bond0"}); len(e.net.ports) != 2 || !strings.Contains(w.Body.String(), "on probation") {
		t.Errorf("a second change while one is on probation: ports %+v", e.net.ports)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/network/confirm", hdr: bearer}); w.Code != 204 || e.net.trial != nil {
		t.Errorf("confirm = %d, trial %+v", w.Code, e.net.trial)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/network/confirm", hdr: bearer}); w.Code != 409 {
		t.Errorf("confirm with nothing on probation = %d", w.Code)
	}
	if e.do(req{method: "POST", path: "/network/dhcp", hdr: form, body: "name=bond0"}); len(e.net.ports) != 1 || e.net.ports[0].Name == "bond0" || e.net.trial == nil {
		t.Errorf("DHCP again: ports %+v, trial %+v", e.net.ports, e.net.trial)
	}
	e.net.trial = &appliance.NetworkTrial{By: "admin", Until: time.Now(), Reverted: true, Why: "it was not confirmed in time"}
	if body := e.do(req{method: "GET", path: "/network", hdr: cookie}).Body.String(); !strings.Contains(body, `id="network-reverted"`) {
		t.Error("the page does not say the change was put back")
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/network", hdr: bearer, body: `{"ports":[],"revert_after_s":-1}`}); w.Code != 400 {
		t.Errorf("a negative probation = %d", w.Code)
	}
}

// A unit the witness refuses as stale says why on the dashboard and offers the forced activation.
func TestStaleUnitIsExplained(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.pair.st = appliance.PairStatus{Paired: true, Name: "unit-a", Role: "standby", Mode: "auto",
		Peer:    &appliance.PairPeer{Name: "unit-b"},
		Witness: &appliance.PairWitness{Address: "192.0.2.30:7947", Reachable: true, Stale: true}}
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	if body := e.do(req{method: "GET", path: "/", hdr: cookie}).Body.String(); !strings.Contains(body, "older than the other unit") {
		t.Error("the dashboard does not say the copy is stale")
	}
	body := e.do(req{method: "GET", path: "/pair", hdr: cookie}).Body.String()
	for _, want := range []string{"will not make this unit active", `name="force"`} {
		if !strings.Contains(body, want) {
			t.Errorf("pair page lacks %q", want)
		}
	}
}

// Handing the service over asks for a confirmation that names the consequence; without it nothing happens.
func TestHandOverNeedsConfirmation(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.pair.st = appliance.PairStatus{Paired: true, Name: "unit-a", Role: "active", Mode: "auto", Rejected: map[string]int{},
		Peer: &appliance.PairPeer{Name: "unit-b", Reachable: true}}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if w := e.do(req{method: "GET", path: "/pair", hdr: form}); !strings.Contains(w.Body.String(), "lose their database connections for a few seconds while unit-b takes over") {
		t.Errorf("the hand-over form does not say what happens:\n%s", w.Body)
	}
	w := e.do(req{method: "POST", path: "/pair/role", body: "role=standby", hdr: form})
	if !strings.Contains(w.Body.String(), "tick the box to confirm the hand-over") || len(e.pair.roles) != 0 {
		t.Errorf("a hand-over without the box: asked %v\n%s", e.pair.roles, w.Body)
	}
	w = e.do(req{method: "POST", path: "/pair/role", body: "role=standby&confirm=yes", hdr: form})
	if !strings.Contains(w.Body.String(), "Asked for this unit to hand the service over") || len(e.pair.roles) != 1 || e.pair.roles[0] != "standbyfalse" {
		t.Errorf("a confirmed hand-over: asked %v\n%s", e.pair.roles, w.Body)
	}
}

// The network page shows how right the clock is and lets an admin set the time servers; so does the API.
func TestClockOnNetworkPage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	body := e.do(req{method: "GET", path: "/network", hdr: form}).Body.String()
	if !strings.Contains(body, "against pool.ntp.org: off by 0.004 s.") || !strings.Contains(body, `name="servers" value="pool.ntp.org"`) {
		t.Errorf("network page's clock section:\n%s", body)
	}
	if body := e.do(req{method: "POST", path: "/network/time-servers", hdr: form, body: "servers=ntp%2Fx"}).Body.String(); !strings.Contains(body, `class="error"`) {
		t.Error("a bad time server was not refused on the page")
	}
	if body := e.do(req{method: "POST", path: "/network/time-servers", hdr: form, body: "servers=ntp1.office.example,+192.0.2.1"}).Body.String(); !strings.Contains(body, "Time servers saved") ||
		strings.Join(e.clock.Clock().Servers, " ") != "ntp1.office.example 192.0.2.1" {
		t.Errorf("time servers from the form: %v", e.clock.Clock().Servers)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/system/clock", body: `{"servers":["192.0.2.123"]}`, hdr: bearer(tok)}); w.Code != 204 || e.clock.Clock().Servers[0] != "192.0.2.123" {
		t.Errorf("PUT clock = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/system/clock", hdr: bearer(tok)}); w.Code != 200 || !strings.Contains(w.Body.String(), `"offset_s":0.004`) {
		t.Errorf("GET clock = %d %s", w.Code, w.Body)
	}
}
