package webui

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lawbox/appliance/appliance"
)

// shareRoutes: the office's file shares and the accounts the PCs sign in to them with.
func (s *Server) shareRoutes() []Route {
	return []Route{
		{"GET /shares", Viewer, s.pageShares},
		{"POST /shares", Admin, s.formPutShare},
		{"POST /shares/{name}/delete", Admin, s.formDeleteShare},
		{"POST /shares/accounts", Admin, s.formPutFileAccount},
		{"POST /shares/accounts/{name}/delete", Admin, s.formDeleteFileAccount},
		{"GET /api/v1/shares", Viewer, s.apiShares},
		{"PUT /api/v1/shares/{name}", Admin, s.apiPutShare},
		{"DELETE /api/v1/shares/{name}", Admin, s.apiDeleteShare},
		{"PUT /api/v1/file-accounts/{name}", Admin, s.apiPutFileAccount},
		{"DELETE /api/v1/file-accounts/{name}", Admin, s.apiDeleteFileAccount},
		{"POST /shares/grow", Admin, s.formGrowDocuments},
		{"POST /api/v1/shares/grow", Admin, s.apiGrowDocuments},
	}
}

func (s *Server) apiGrowDocuments(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var p struct {
		Add int64 `json:"add_bytes"`
	}
	if err := decode(r, &p); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.shares.GrowDocuments(r.Context(), p.Add); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// formGrowDocuments gives the documents the GB typed (decimal, as the sizes shown) more room.
func (s *Server) formGrowDocuments(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	gb, err := strconv.ParseFloat(strings.ReplaceAll(r.PostFormValue("gb"), ",", "."), 64)
	if err != nil || gb <= 0 || gb > 1e6 {
		err = fmt.Errorf("%w: type how many GB to add, such as 50", appliance.ErrBadInput)
	} else {
		err = s.shares.GrowDocuments(r.Context(), int64(gb*1e9))
	}
	s.renderShares(w, r, sess, "The documents have more room.", err)
}

func (s *Server) apiShares(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	writeJSON(w, http.StatusOK, s.shares.Shares(r.Context()))
}

func (s *Server) apiPutShare(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var sh appliance.FileShare
	if err := decode(r, &sh); err != nil {
		s.fail(w, r, err)
		return
	}
	sh.Name = r.PathValue("name")
	if err := s.shares.PutShare(r.Context(), sh); err != nil {
		s.fail(w, r, err)
		return
	}
	s.apiShares(w, r, sess)
}

func (s *Server) apiDeleteShare(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.shares.DeleteShare(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiPutFileAccount(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var p struct {
		Password string `json:"password"`
	}
	if err := decode(r, &p); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.shares.PutAccount(r.Context(), r.PathValue("name"), p.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiDeleteFileAccount(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.shares.DeleteAccount(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pageShares(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderShares(w, r, sess, "", nil)
}

func (s *Server) renderShares(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice string, err error) {
	d := pageData{Session: sess, Shares: s.shares.Shares(r.Context()), Notice: notice}
	// Clients use the service address of a pair (it follows the active unit), else the unit's own.
	d.ShareHost = r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		d.ShareHost = h
	}
	if vip := s.pair.Pair().VIP; vip != "" {
		if p, err := netip.ParsePrefix(vip); err == nil {
			d.ShareHost = p.Addr().String()
		}
	}
	if err != nil {
		_, d.Error = statusOf(err)
		d.Notice = ""
	}
	s.render(w, r, http.StatusOK, "shares", d)
}

// formPutShare creates or changes a share: each account's access comes as access.NAME = none, read or write.
func (s *Server) formPutShare(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	sh := appliance.FileShare{Name: r.PostFormValue("name"), Comment: r.PostFormValue("comment"), Encrypt: r.PostFormValue("encrypt") == "yes"}
	for _, a := range s.shares.Shares(r.Context()).Accounts {
		switch r.PostFormValue("access." + a.Name) {
		case "write":
			sh.ReadWrite = append(sh.ReadWrite, a.Name)
		case "read":
			sh.ReadOnly = append(sh.ReadOnly, a.Name)
		}
	}
	err := s.shares.PutShare(r.Context(), sh)
	s.renderShares(w, r, sess, "Share saved.", err)
}

func (s *Server) formDeleteShare(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	var err error
	if r.PostFormValue("confirm") != name {
		err = fmt.Errorf("%w: type the share's name to confirm", appliance.ErrBadInput)
	} else {
		err = s.shares.DeleteShare(r.Context(), name)
	}
	s.renderShares(w, r, sess, "The share is no longer offered; its folder and its files are kept.", err)
}

func (s *Server) formPutFileAccount(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PostFormValue("name")
	var err error
	if pw := r.PostFormValue("password"); pw != r.PostFormValue("confirm") {
		err = fmt.Errorf("%w: the two passwords differ", appliance.ErrBadInput)
	} else {
		err = s.shares.PutAccount(r.Context(), name, pw)
	}
	s.renderShares(w, r, sess, "File account saved.", err)
}

func (s *Server) formDeleteFileAccount(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	var err error
	if r.PostFormValue("confirm") != name {
		err = fmt.Errorf("%w: type the account's name to confirm", appliance.ErrBadInput)
	} else {
		err = s.shares.DeleteAccount(r.Context(), name)
	}
	s.renderShares(w, r, sess, "File account removed; it no longer has access to any share.", err)
}
