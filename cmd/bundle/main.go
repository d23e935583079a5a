// Command bundle makes and signs firmware update bundles at build time (image/build.sh).
//
//	bundle keygen -key build/signing.key -pub build/signing.pub   (a development key, when none exists)
//	bundle pack -key KEY -version V -build N [-min-build M] -out lawbox-V.update lawbox-V.efi
//
// The key file is JSON {"id","seed"} (hex), mode 0600, never committed; the public key file is minisign's,
// so `minisign -Vm manifest.json -p signing.pub` checks a bundle's manifest outside the unit.
package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/lawbox/appliance/appliance/firmware"
)

type keyFile struct {
	ID   string `json:"id"`
	Seed string `json:"seed"`
}

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: bundle keygen|pack ...")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	keyPath := fs.String("key", "build/signing.key", "signing key file")
	switch os.Args[1] {
	case "keygen":
		pubPath := fs.String("pub", "build/signing.pub", "public key file (minisign format)")
		fs.Parse(os.Args[2:])
		if err := keygen(*keyPath, *pubPath); err != nil {
			log.Fatalf("bundle keygen: %v", err)
		}
	case "pack":
		version := fs.String("version", "", "firmware version")
		build := fs.Int("build", 0, "build number (rises with every build)")
		minBuild := fs.Int("min-build", 1, "oldest running build that may take the bundle")
		out := fs.String("out", "", "bundle file to write")
		fs.Parse(os.Args[2:])
		if *version == "" || *build == 0 || *out == "" || fs.NArg() == 0 {
			log.Fatal("bundle pack: -version, -build, -out and at least one part are needed")
		}
		if err := pack(*keyPath, *version, *build, *minBuild, *out, fs.Args()); err != nil {
			log.Fatalf("bundle pack: %v", err)
		}
	default:
		log.Fatalf("bundle: unknown command %q", os.Args[1])
	}
}

// keygen writes a new key pair, unless the key file exists (then only the public key file is written).
func keygen(keyPath, pubPath string) error {
	k, err := readKey(keyPath)
	if os.IsNotExist(err) {
		if k, err = firmware.GenerateKey(); err != nil {
			return err
		}
		b, _ := json.Marshal(keyFile{ID: hex.EncodeToString(k.ID[:]), Seed: hex.EncodeToString(k.Seed)})
		if err := os.WriteFile(keyPath, b, 0o600); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	pub := fmt.Sprintf("untrusted comment: lawbox firmware public key %x\n%s\n", k.ID, k.Public())
	return os.WriteFile(pubPath, []byte(pub), 0o644)
}

func readKey(path string) (firmware.SecretKey, error) {
	var k firmware.SecretKey
	b, err := os.ReadFile(path)
	if err != nil {
		return k, err
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return k, fmt.Errorf("%s: %w", path, err)
	}
	id, err1 := hex.DecodeString(f.ID)
	seed, err2 := hex.DecodeString(f.Seed)
	if err1 != nil || err2 != nil || len(id) != 8 || len(seed) != 32 {
		return k, fmt.Errorf("%s: not a signing key", path)
	}
	copy(k.ID[:], id)
	k.Seed = seed
	return k, nil
}

func pack(keyPath, version string, build, minBuild int, out string, parts []string) error {
	k, err := readKey(keyPath)
	if err != nil {
		return err
	}
	m := firmware.Manifest{Version: version, Build: build, MinBuild: minBuild}
	paths := map[string]string{}
	for _, p := range parts {
		m.Parts = append(m.Parts, firmware.Part{Name: filepath.Base(p)})
		paths[filepath.Base(p)] = p
	}
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	err = firmware.Write(f, k, m, func(name string) (io.ReadCloser, error) { return os.Open(paths[name]) })
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out + ".tmp")
		return err
	}
	return os.Rename(out+".tmp", out)
}
