package firmware

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bundle makes a signed bundle of build with one part.
func bundle(t *testing.T, k SecretKey, m Manifest, image string) []byte {
	t.Helper()
	var b bytes.Buffer
	err := Write(&b, k, m, func(string) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(image)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func check(b []byte, key PublicKey, running int, allowDown bool) (Manifest, string, error) {
	var got bytes.Buffer
	m, err := Check(bytes.NewReader(b), key, running, allowDown, 1<<20, func(Part) (io.Writer, error) { return &got, nil })
	return m, got.String(), err
}

// A good bundle passes and hands over its part; every bad one of the issue is refused with a reason.
func TestCheckBundle(t *testing.T) {
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	image := strings.Repeat("unified kernel image ", 1000)
	good := bundle(t, k, Manifest{Version: "v12", Build: 12, MinBuild: 5, Parts: []Part{{Name: "lawbox-v12.efi"}}}, image)
	m, got, err := check(good, k.Public(), 10, false)
	if err != nil || m.Version != "v12" || got != image {
		t.Fatalf("Check(good) = %+v, %d bytes, %v", m, len(got), err)
	}

	tamper := func(f func(name string, data []byte) []byte) []byte { // rewrites the tar's entries
		var out bytes.Buffer
		tr, tw := tar.NewReader(bytes.NewReader(good)), tar.NewWriter(&out)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			data, _ := io.ReadAll(tr)
			if data = f(h.Name, data); data == nil {
				continue
			}
			h.Size = int64(len(data))
			tw.WriteHeader(h)
			tw.Write(data)
		}
		tw.Close()
		return out.Bytes()
	}
	for name, c := range map[string]struct {
		b       []byte
		running int
		want    error
		says    string
	}{
		"unsigned": {tamper(func(n string, d []byte) []byte {
			return map[bool][]byte{true: nil, false: d}[n == "manifest.json.minisig"]
		}), 10, ErrBadBundle, "unsigned"},
		"foreign key": {bundle(t, other, Manifest{Version: "v12", Build: 12, Parts: []Part{{Name: "lawbox-v12.efi"}}}, image), 10, ErrBadBundle, "not this firmware's key"},
		"truncated":   {good[:len(good)-3000], 10, ErrBadBundle, "lawbox-v12.efi"},
		"corrupted":   {bytes.Replace(good, []byte("unified kernel image unified"), []byte("unified kernel image UNIFIED"), 1), 10, ErrBadBundle, "damaged"},
		"edited manifest": {tamper(func(n string, d []byte) []byte {
			if n == "manifest.json" {
				return bytes.Replace(d, []byte(`"min_build": 5`), []byte(`"min_build": 1`), 1)
			}
			return d
		}), 10, ErrBadBundle, "does not match"},
		"another product": {tamper(func(n string, d []byte) []byte {
			switch n {
			case "manifest.json":
				return bytes.Replace(d, []byte(`"product": "lawbox"`), []byte(`"product": "otherbox"`), 1)
			case "manifest.json.minisig": // signed by the right key, for another product
				m := bytes.Replace(manifestOf(t, good), []byte(`"product": "lawbox"`), []byte(`"product": "otherbox"`), 1)
				return k.Sign(m, "another product")
			}
			return d
		}), 10, ErrBadBundle, `"otherbox"`},
		"downgrade":       {good, 13, ErrDowngrade, "build 12"},
		"too old to take": {good, 4, ErrBadBundle, "from build 5 on"},
		"too big":         {bundle(t, k, Manifest{Version: "v12", Build: 12, Parts: []Part{{Name: "lawbox-v12.efi"}}}, strings.Repeat("x", 2<<20)), 10, ErrBadBundle, "room for"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := check(c.b, k.Public(), c.running, false)
			if !errors.Is(err, c.want) || !strings.Contains(fmt2(err), c.says) {
				t.Errorf("Check = %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
	if _, _, err := check(good, k.Public(), 13, true); err != nil {
		t.Errorf("a downgrade asked for: %v", err)
	}
}

// manifestOf is the manifest inside bundle b.
func manifestOf(t *testing.T, b []byte) []byte {
	tr := tar.NewReader(bytes.NewReader(b))
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(tr)
	return m
}

func fmt2(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// The signature is minisign's: the minisign tool verifies a bundle's manifest with the public key.
func TestMinisignVerifiesTheManifest(t *testing.T) {
	bin, err := exec.LookPath("minisign")
	if err != nil {
		t.Skip("minisign is not installed")
	}
	k, _ := GenerateKey()
	b := bundle(t, k, Manifest{Version: "v1", Build: 1, Parts: []Part{{Name: "lawbox-v1.efi"}}}, "image")
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(b))
	for i := 0; i < 2; i++ {
		h, _ := tr.Next()
		data, _ := io.ReadAll(tr)
		os.WriteFile(filepath.Join(dir, h.Name), data, 0o644)
	}
	out, err := exec.Command(bin, "-V", "-m", filepath.Join(dir, "manifest.json"), "-P", k.Public().String()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature and comment signature verified") {
		t.Errorf("minisign -V: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"product":"lawbox","version":"v9"}`), 0o644)
	if out, err := exec.Command(bin, "-V", "-m", filepath.Join(dir, "manifest.json"), "-P", k.Public().String()).CombinedOutput(); err == nil {
		t.Errorf("minisign verified a changed manifest:\n%s", out)
	}
}
