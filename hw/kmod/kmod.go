// Package kmod loads the kernel modules the appliance needs, with their dependencies, from a module tree
// staged with depmod at image build time. It does not decide which modules are needed: the image's list does.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
)

// ParseList reads a module list: one name a line, '#' starts a comment, blank lines are ignored.
func ParseList(r io.Reader) ([]string, error) {
	var names []string
	s := bufio.NewScanner(r)
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			names = append(names, line)
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	return names, nil
}

// Load loads names in order, each after its dependencies, from root/lib/modules/release. A module that is
// built in or already loaded is not an error. Every failure is reported; loading goes on past one.
func Load(root, release string, names []string) error {
	p, err := kmodule.NewProber(kmodule.ProbeOpts{RootDir: root, KVer: release})
	if err != nil {
		return fmt.Errorf("read modules.dep of %s: %w", release, err)
	}
	var errs []error
	for _, n := range names {
		if err := p.Probe(n, ""); err != nil && !errors.Is(err, os.ErrExist) {
			errs = append(errs, fmt.Errorf("load module %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}
