package webui

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/lawbox/appliance/appliance"
)

// networkRoutes: the ports' addresses and name servers.
func (s *Server) networkRoutes() []Route {
	return []Route{
		{"GET /network", Viewer, s.pageNetwork},
		{"POST /network", Admin, s.formNetwork},
		{"POST /network/dhcp", Admin, s.formDHCP},
		{"POST /network/confirm", Admin, s.formConfirmNetwork},
		{"GET /api/v1/network", Viewer, s.apiNetwork},
		{"PUT /api/v1/network", Admin, s.apiSetNetwork},
		{"POST /api/v1/network/confirm", Admin, s.apiConfirmNetwork},
		{"POST /network/time-servers", Admin, s.formTimeServers},
		{"GET /api/v1/system/clock", Viewer, s.apiClock},
		{"PUT /api/v1/system/clock", Admin, s.apiSetClock},
	}
}

// networkPage is the network page's content.
type networkPage struct {
	Ports []appliance.NetworkPort
	DNS   []string // the name servers in effect
	Links []appliance.NetworkLink
	// Trial is a network change on probation, or the last one put back
	Trial *appliance.NetworkTrial
	Clock *appliance.ClockStatus // nil: not kept
}

func (s *Server) pageNetwork(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderNetwork(w, r, sess, nil, "")
}

func (s *Server) renderNetwork(w http.ResponseWriter, r *http.Request, sess appliance.Session, actionErr error, notice string) {
	d := pageData{Session: sess, Network: networkPage{Ports: s.net.Ports(), DNS: s.net.Nameservers(), Links: s.net.Links(), Trial: s.net.Trial()}}
	if s.clock != nil {
		c := s.clock.Clock()
		d.Network.Clock = &c
	}
	if actionErr != nil {
		_, d.Error = statusOf(actionErr)
	} else {
		d.Notice = notice
	}
	s.render(w, r, http.StatusOK, "network", d)
}

type portsRequest struct {
	Ports []appliance.NetworkPort `json:"ports"`
	// RevertAfterS, in a request: apply on probation, put back unless confirmed within so many seconds
	// (POST /api/v1/network/confirm); 0: at once for good.
	RevertAfterS int                     `json:"revert_after_s,omitempty"`
	Nameservers  []string                `json:"nameservers,omitempty"` // in effect; ignored in a request
	Links        []appliance.NetworkLink `json:"links,omitempty"`       // ignored in a request
	Trial        *appliance.NetworkTrial `json:"trial,omitempty"`       // ignored in a request
}

// probation is how long a change made on the network page may go unconfirmed before it is put back.
const probation = 60 * time.Second

func (s *Server) apiNetwork(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	writeJSON(w, http.StatusOK, portsRequest{Ports: s.net.Ports(), Nameservers: s.net.Nameservers(), Links: s.net.Links(), Trial: s.net.Trial()})
}

func (s *Server) apiSetNetwork(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var pr portsRequest
	if err := decode(r, &pr); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("network configuration change", "ports", len(pr.Ports), "revert_after_s", pr.RevertAfterS, "user", sess.User, "remote", remote(r))
	var err error
	switch {
	case pr.RevertAfterS < 0 || pr.RevertAfterS > 3600:
		err = fmt.Errorf("%w: revert_after_s: 0 (at once) or 1 to 3600 seconds", appliance.ErrBadInput)
	case pr.RevertAfterS > 0:
		err = s.net.TryPorts(r.Context(), pr.Ports, time.Duration(pr.RevertAfterS)*time.Second, sess.User)
	default:
		err = s.net.SetPorts(r.Context(), pr.Ports)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.apiNetwork(w, r, sess)
}

func (s *Server) apiConfirmNetwork(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if err := s.net.ConfirmPorts(r.Context(), sess.User); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) formNetwork(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	port := appliance.NetworkPort{Name: r.PostFormValue("name"), Gateway: r.PostFormValue("gateway")}
	if a := r.PostFormValue("address"); a != "" {
		port.Addresses = []string{a}
	}
	list := func(k string) []string {
		return strings.FieldsFunc(r.PostFormValue(k), func(c rune) bool { return c == ',' || c == ' ' })
	}
	port.DNS, port.Members = list("dns"), list("members")
	ports := []appliance.NetworkPort{}
	for _, p := range s.net.Ports() {
		if p.Name != port.Name {
			ports = append(ports, p)
		}
	}
	ports = append(ports, port)
	s.log.Warn("network configuration change", "port", port.Name, "user", sess.User, "remote", remote(r))
	err := s.net.TryPorts(r.Context(), ports, probation, sess.User)
	s.renderNetwork(w, r, sess, err, "") // the page's probation notice says what to do; a notice kept for the next page would outlive a revert
}

// formDHCP puts a port back on DHCP, on probation as any change.
func (s *Server) formDHCP(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PostFormValue("name")
	ports := []appliance.NetworkPort{}
	found := false
	for _, p := range s.net.Ports() {
		if p.Name == name {
			found = true
			continue
		}
		ports = append(ports, p)
	}
	var err error
	if !found {
		err = fmt.Errorf("%w: port %q has no fixed address", appliance.ErrBadInput, name)
	} else {
		s.log.Warn("network configuration change: DHCP again", "port", name, "user", sess.User, "remote", remote(r))
		err = s.net.TryPorts(r.Context(), ports, probation, sess.User)
	}
	s.renderNetwork(w, r, sess, err, "") // the page's probation notice says what to do; a notice kept for the next page would outlive a revert
}

func (s *Server) formConfirmNetwork(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	err := s.net.ConfirmPorts(r.Context(), sess.User)
	s.renderNetwork(w, r, sess, err, "The network configuration is kept.")
}

// errNoClock: the web UI runs without a clock keeper (tests with fakes).
var errNoClock = fmt.Errorf("the clock: %w", appliance.ErrUnavailable)

type timeServers struct {
	Servers []string `json:"servers"`
}

func (s *Server) apiClock(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if s.clock == nil {
		s.fail(w, r, errNoClock)
		return
	}
	writeJSON(w, http.StatusOK, s.clock.Clock())
}

func (s *Server) apiSetClock(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var ts timeServers
	err := decode(r, &ts)
	if err == nil && s.clock == nil {
		err = errNoClock
	}
	if err == nil {
		s.log.Info("time servers set", "servers", ts.Servers, "user", sess.User, "remote", remote(r))
		err = s.clock.SetTimeServers(ts.Servers)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// formTimeServers sets the time servers from the network page's field (separated by spaces, commas or
// lines).
func (s *Server) formTimeServers(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	servers := strings.FieldsFunc(r.PostFormValue("servers"), func(c rune) bool { return c == ',' || unicode.IsSpace(c) })
	err := errNoClock
	if s.clock != nil {
		s.log.Info("time servers set", "servers", servers, "user", sess.User, "remote", remote(r))
		err = s.clock.SetTimeServers(servers)
	}
	s.renderNetwork(w, r, sess, err, "Time servers saved: the unit asks them now, then every 15 minutes.")
}
