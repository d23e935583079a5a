// Package target is where backups are kept: the unit's own array (Dir), S3 and SFTP servers, an upload rate
// limit (Limited) and the progress of a copy or restore (Progress, Counted). Everything it stores is already
// sealed by the engine (package backup); keys stay inside the target.
package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lawbox/appliance/appliance/durable"
)

// Target is where backups are kept: the unit's own array or an offsite store. Keys are slash-separated
// ("20261123T020000Z-dump/practice.dump.zst.age"); everything written is already encrypted.
type Target interface {
	Name() string
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	List(ctx context.Context) ([]string, error) // every key, sorted
	// Size is the stored size of key (an error wrapping fs.ErrNotExist when it is not there).
	Size(ctx context.Context, key string) (int64, error)
	Delete(ctx context.Context, key string) error
}

// Dir is a target in a directory (the unit's own array: /data/backups).
type Dir struct{ Path string }

func (d Dir) Name() string { return "this unit" }

func (d Dir) path(key string) (string, error) {
	if !validKey(key) {
		return "", fmt.Errorf("backup key %q", key)
	}
	return filepath.Join(d.Path, filepath.FromSlash(key)), nil
}

// validKey keeps keys inside the target: no absolute paths, no "..".
func validKey(key string) bool {
	if key == "" || strings.HasPrefix(key, "/") {
		return false
	}
	for _, p := range strings.Split(key, "/") {
		if p == "" || p == "." || p == ".." {
			return false
		}
	}
	return true
}

// Put writes a temporary file, syncs it and renames it into place: a power cut leaves no torn object.
func (d Dir) Put(_ context.Context, key string, r io.Reader, _ int64) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(p, r, nil)
}

func (d Dir) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

func (d Dir) List(context.Context) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(d.Path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.Type().IsRegular() && !strings.HasSuffix(p, durable.Partial) {
			rel, _ := filepath.Rel(d.Path, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(keys)
	return keys, err
}

func (d Dir) Size(_ context.Context, key string) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d Dir) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	_ = os.Remove(filepath.Dir(p)) // the backup's directory, once empty
	return nil
}

// S3 is an S3-compatible bucket (minio-go): AWS, Backblaze, Wasabi, MinIO, versitygw.
type S3 struct {
	Endpoint  string // "s3.example.com" or "127.0.0.1:7070"
	Bucket    string
	Prefix    string // inside the bucket, "" or "office/"
	AccessKey string
	SecretKey string
	Insecure  bool // plain HTTP (a local test server)
	Region    string

	client *minio.Client
}

func (s *S3) Name() string { return "s3://" + s.Endpoint + "/" + s.Bucket + "/" + s.Prefix }

func (s *S3) c() (*minio.Client, error) {
	if s.client != nil {
		return s.client, nil
	}
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: !s.Insecure, Region: s.Region})
	if err != nil {
		return nil, fmt.Errorf("S3 %s: %w", s.Endpoint, err)
	}
	s.client = c
	return c, nil
}

// Put uploads the object (multipart above 16 MiB, so a large dump is sent in parts).
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	c, err := s.c()
	if err != nil {
		return err
	}
	_, err = c.PutObject(ctx, s.Bucket, s.Prefix+key, r, size, minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: 16 << 20})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", key, s.Name(), err)
	}
	return nil
}

func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c, err := s.c()
	if err != nil {
		return nil, err
	}
	o, err := c.GetObject(ctx, s.Bucket, s.Prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("download %s from %s: %w", key, s.Name(), err)
	}
	if _, err := o.Stat(); err != nil {
		o.Close()
		return nil, fmt.Errorf("download %s from %s: %w", key, s.Name(), err)
	}
	return o, nil
}

func (s *S3) List(ctx context.Context) ([]string, error) {
	c, err := s.c()
	if err != nil {
		return nil, err
	}
	var keys []string
	for o := range c.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: s.Prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", s.Name(), o.Err)
		}
		keys = append(keys, strings.TrimPrefix(o.Key, s.Prefix))
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *S3) Size(ctx context.Context, key string) (int64, error) {
	c, err := s.c()
	if err != nil {
		return 0, err
	}
	fi, err := c.StatObject(ctx, s.Bucket, s.Prefix+key, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == 404 {
			return 0, fmt.Errorf("%s on %s: %w", key, s.Name(), fs.ErrNotExist)
		}
		return 0, fmt.Errorf("%s on %s: %w", key, s.Name(), err)
	}
	return fi.Size, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	c, err := s.c()
	if err != nil {
		return err
	}
	if err := c.RemoveObject(ctx, s.Bucket, s.Prefix+key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s from %s: %w", key, s.Name(), err)
	}
	return nil
}

// ReadCloser is a Reader whose Close runs OnClose.
type ReadCloser struct {
	io.Reader
	OnClose func() error
}

func (r ReadCloser) Close() error { return r.OnClose() }
