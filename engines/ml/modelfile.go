package ml

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Signed model directories.
//
// A model is a directory of JSON files plus two more:
//
//	manifest.json   {"version":1,"created":"2026-12-03T21:00:00Z","key":"<hex public key>",
//	                 "files":{"forest.json":"<sha256 hex>","iforest.json":"<sha256 hex>",...}}
//	manifest.sig    the ed25519 signature of manifest.json's exact bytes, base64 (std), one line
//
// LoadModel reads manifest.json, checks that it is JSON of that shape,
// checks manifest.sig against the public key given (the pinned one, or
// the engine's own), then reads every listed file and compares its
// SHA-256 with the manifest. Any failure refuses the whole model with an
// error matching one of ErrManifest, ErrSignature, ErrDigest or
// ErrKeyLength; nothing is returned half-loaded. File names in a
// manifest are plain names (no '/', no leading '.'), so a manifest cannot
// point outside its directory. The key the manifest names is
// informational only: trust comes from the key the caller passes.
//
// Keys: a private key file holds the 32-byte ed25519 seed in hex, one
// line, mode 0600; a public key is 32 bytes in hex or base64.

// Errors a refused model or key matches with errors.Is.
var (
	ErrManifest  = errors.New("model manifest is not valid")
	ErrSignature = errors.New("model signature does not verify")
	ErrDigest    = errors.New("model file digest does not match its manifest")
	ErrKeyLength = errors.New("key has the wrong length")
)

// Manifest is manifest.json.
type Manifest struct {
	Version int               `json:"version"`
	Created string            `json:"created,omitempty"`
	Key     string            `json:"key,omitempty"`
	Files   map[string]string `json:"files"`
}

const (
	ManifestName = "manifest.json"
	SigName      = "manifest.sig"
	maxModelFile = 64 << 20
)

// GenerateKey makes a new ed25519 key pair from crypto/rand.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// LoadOrCreateKey reads the private key at path, or makes one there
// (mode 0600, created exclusively) when there is none: "a key made at
// first start".
func LoadOrCreateKey(path string) (ed25519.PrivateKey, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParsePrivateKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("ml: %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("ml: %w", err)
	}
	_, priv, err := GenerateKey()
	if err != nil {
		return nil, false, fmt.Errorf("ml: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("ml: %w", err)
	}
	_, werr := fmt.Fprintln(f, hex.EncodeToString(priv.Seed()))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("ml: %w", werr)
	}
	return priv, true, nil
}

// ParsePrivateKey parses a hex seed of 32 bytes.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("private key is not hex: %w", err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("private key seed of %d bytes, want %d: %w", len(b), ed25519.SeedSize, ErrKeyLength)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// ParsePublicKey parses a 32-byte public key written in hex (64 digits)
// or standard base64.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		b, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("public key is neither hex nor base64")
		}
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key of %d bytes, want %d: %w", len(b), ed25519.PublicKeySize, ErrKeyLength)
	}
	return ed25519.PublicKey(b), nil
}

// PublicKeyString is the hex form ParsePublicKey reads.
func PublicKeyString(k ed25519.PublicKey) string { return hex.EncodeToString(k) }

func validName(n string) bool {
	return n != "" && !strings.ContainsAny(n, "/\\\x00") && !strings.HasPrefix(n, ".") &&
		n != ManifestName && n != SigName && len(n) <= 255
}

// SaveModel writes files (name -> JSON bytes) into dir with a signed
// manifest. Files are written first and the signature last, each through
// a temporary file and a rename, so a crash leaves either the old model
// or a model that fails verification, never a wrong model that passes.
func SaveModel(dir string, files map[string][]byte, priv ed25519.PrivateKey, created string) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("ml: private key of %d bytes: %w", len(priv), ErrKeyLength)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ml: %w", err)
	}
	m := Manifest{Version: 1, Created: created, Key: PublicKeyString(priv.Public().(ed25519.PublicKey)), Files: map[string]string{}}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !validName(n) {
			return fmt.Errorf("ml: model file name %q: %w", n, ErrManifest)
		}
		sum := sha256.Sum256(files[n])
		m.Files[n] = hex.EncodeToString(sum[:])
		if err := writeAtomic(filepath.Join(dir, n), files[n]); err != nil {
			return err
		}
	}
	mb, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return fmt.Errorf("ml: %w", err)
	}
	mb = append(mb, '\n')
	os.Remove(filepath.Join(dir, SigName))
	if err := writeAtomic(filepath.Join(dir, ManifestName), mb); err != nil {
		return err
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, mb)) + "\n"
	return writeAtomic(filepath.Join(dir, SigName), []byte(sig))
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("ml: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ml: %w", err)
	}
	return nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxModelFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxModelFile {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxModelFile)
	}
	return b, nil
}

// ParseManifest decodes manifest bytes strictly: JSON of Manifest's
// shape, version 1, at least one file, plain file names, 64-digit hex
// digests, nothing after the object.
func ParseManifest(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: not JSON of the manifest's shape: %v", ErrManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrManifest)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrManifest, m.Version)
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%w: lists no files", ErrManifest)
	}
	for n, d := range m.Files {
		if !validName(n) {
			return nil, fmt.Errorf("%w: file name %q is not a plain name", ErrManifest, n)
		}
		if h, err := hex.DecodeString(d); err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%w: digest of %s is not 64 hex digits", ErrManifest, n)
		}
	}
	return &m, nil
}

// LoadModel verifies and reads the model in dir against pub. See the
// format above.
func LoadModel(dir string, pub ed25519.PublicKey) (map[string][]byte, *Manifest, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("ml: public key of %d bytes, want %d: %w", len(pub), ed25519.PublicKeySize, ErrKeyLength)
	}
	mb, err := readBounded(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, nil, fmt.Errorf("ml: %w: %v", ErrManifest, err)
	}
	m, err := ParseManifest(mb)
	if err != nil {
		return nil, nil, fmt.Errorf("ml: %s: %w", filepath.Join(dir, ManifestName), err)
	}
	sb, err := readBounded(filepath.Join(dir, SigName))
	if err != nil {
		return nil, nil, fmt.Errorf("ml: %w: %v", ErrSignature, err)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sb)))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("ml: %s: %w: not a base64 ed25519 signature", filepath.Join(dir, SigName), ErrSignature)
	}
	if !ed25519.Verify(pub, mb, sig) {
		return nil, nil, fmt.Errorf("ml: %s: %w under key %s", filepath.Join(dir, SigName), ErrSignature, PublicKeyString(pub)[:16]+"…")
	}
	out := map[string][]byte{}
	for n, want := range m.Files {
		b, err := readBounded(filepath.Join(dir, n))
		if err != nil {
			return nil, nil, fmt.Errorf("ml: %w: %v", ErrDigest, err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != strings.ToLower(want) {
			return nil, nil, fmt.Errorf("ml: %s: %w: sha256 %s, manifest says %s", filepath.Join(dir, n), ErrDigest, got[:16]+"…", want[:16]+"…")
		}
		out[n] = b
	}
	return out, m, nil
}

// ManifestDigest is the SHA-256 of the manifest bytes, hex: the model's
// identity in status lines.
func ManifestDigest(dir string) (string, error) {
	b, err := readBounded(filepath.Join(dir, ManifestName))
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}
