// Package blob stores experiment artifacts (loss curves, checkpoints, logs)
// in one bucket of any S3-compatible server through minio-go.
//
// Keys are derived from the experiment (receipt) id:
//
//	experiments/<id>/<name>
//
// Artifacts produced before the receipt exists are staged under
// staging/<campaign>/<agent>/run-<n>/<name> and moved by Promote.
package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config says how to reach the S3 server.
type Config struct {
	Endpoint  string // host:port or a URL (http://host:port)
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
	UseSSL    bool
}

// Store is a bucket of artifacts.
type Store struct {
	Client *minio.Client
	Bucket string
}

// Open connects and creates the bucket if it is missing.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	endpoint, secure := cfg.Endpoint, cfg.UseSSL
	if u, err := url.Parse(cfg.Endpoint); err == nil && u.Host != "" {
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	if endpoint == "" {
		return nil, errors.New("s3: endpoint is empty (set --s3-endpoint / HYPERSPACE_S3_ENDPOINT)")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3: bucket is empty (set --s3-bucket / HYPERSPACE_S3_BUCKET)")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	cl, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: secure,
		Region: region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", endpoint, err)
	}
	s := &Store{Client: cl, Bucket: cfg.Bucket}
	if err := s.ensureBucket(ctx, region); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) ensureBucket(ctx context.Context, region string) error {
	var lastErr error
	// The server may still be starting: retry briefly.
	for attempt := 0; attempt < 20; attempt++ {
		ok, err := s.Client.BucketExists(ctx, s.Bucket)
		if err == nil && ok {
			return nil
		}
		if err == nil {
			err = s.Client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: region})
			if err == nil {
				return nil
			}
			var resp minio.ErrorResponse
			if errors.As(err, &resp) && (resp.Code == "BucketAlreadyOwnedByYou" || resp.Code == "BucketAlreadyExists") {
				return nil
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("s3: create bucket %q at %s: %w", s.Bucket, s.Client.EndpointURL(), lastErr)
}

// Ping checks the bucket is reachable.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.Client.BucketExists(ctx, s.Bucket)
	return err
}

// ExperimentKey is the key of an experiment's artifact.
func ExperimentKey(experimentID, name string) string {
	return path.Join("experiments", experimentID, cleanName(name))
}

// StagingPrefix is where a run's artifacts wait for its receipt id.
func StagingPrefix(campaign, agent string, run int) string {
	return fmt.Sprintf("staging/%s/%s/run-%04d/", campaign, agent, run)
}

func cleanName(name string) string {
	name = strings.ReplaceAll(name, "/", "_")
	if name == "" || name == "." || name == ".." {
		return "_"
	}
	return name
}

// Put writes data at key.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) error {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	_, err := s.Client.PutObject(ctx, s.Bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", key, err)
	}
	return nil
}

// Get reads the object at key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.Client.GetObject(ctx, s.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	return b, nil
}

// List returns the keys under prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for obj := range s.Client.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3 list %s: %w", prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys, nil
}

// Promote copies every staged object under prefix to experiments/<id>/ and
// returns name -> final key. The staged copies stay until RemovePrefix, so a
// retry that ends with a different id can promote again.
func (s *Store) Promote(ctx context.Context, prefix, experimentID string) (map[string]string, error) {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, k := range keys {
		name := strings.TrimPrefix(k, prefix)
		dst := ExperimentKey(experimentID, name)
		_, err := s.Client.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: s.Bucket, Object: dst},
			minio.CopySrcOptions{Bucket: s.Bucket, Object: k})
		if err != nil {
			return nil, fmt.Errorf("s3 copy %s -> %s: %w", k, dst, err)
		}
		out[name] = dst
	}
	if len(out) == 0 {
		// Already promoted and cleaned up by an earlier attempt.
		done, err := s.List(ctx, "experiments/"+experimentID+"/")
		if err != nil {
			return nil, err
		}
		for _, k := range done {
			out[path.Base(k)] = k
		}
	}
	return out, nil
}

// RemovePrefix deletes every object under prefix.
func (s *Store) RemovePrefix(ctx context.Context, prefix string) error {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.Client.RemoveObject(ctx, s.Bucket, k, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("s3 remove %s: %w", k, err)
		}
	}
	return nil
}
