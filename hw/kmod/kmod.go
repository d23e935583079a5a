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
	"sync"

	"github.com/u-root/u-root/pkg/kmodule"
)

// ParseList reads a module list: one module a line, its name and then its parameters if it needs any
// ("bonding max_bonds=0"); '#' starts a comment, blank lines are ignored.
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

// Load loads names (as ParseList gives them) from root/lib/modules/release, each after its dependencies. The first name is loaded
// alone, first (the list puts soft dependencies such as crc32c_generic there, which module loaders ignore);
// the rest load concurrently, so drivers that wait on their hardware overlap. A module that is built in or
// already loaded is not an error. Every failure is reported; loading goes on past one.
func Load(root, release string, names []string) error {
	p, err := kmodule.NewProber(kmodule.ProbeOpts{RootDir: root, KVer: release})
	if err != nil {
		return fmt.Errorf("read modules.dep of %s: %w", release, err)
	}
	if len(names) == 0 {
		return nil
	}
	errs := make([]error, len(names))
	probe := func(i int) {
		name, params, _ := strings.Cut(names[i], " ")
		if err := p.Probe(name, strings.TrimSpace(params)); err != nil && !errors.Is(err, os.ErrExist) {
			errs[i] = fmt.Errorf("load module %s: %w", name, err)
		}
	}
	probe(0)
	var wg sync.WaitGroup
	for i := 1; i < len(names); i++ {
		wg.Go(func() { probe(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
