package agent

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store keeps agent records in bbolt (state.db in the state directory):
// bucket "agents" maps the big-endian agent number to the JSON Record,
// bucket "meta" holds "next", the next agent number. Every change is one
// transaction, fsynced by bbolt, so a daemon killed at any point restarts
// with what it had acknowledged.
type Store struct{ db *bolt.DB }

var (
	bucketAgents = []byte("agents")
	bucketMeta   = []byte("meta")
	keyNext      = []byte("next")
)

// OpenStore opens (creating) the store in dir.
func OpenStore(dir string) (*Store, error) {
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAgents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db}, nil
}

func idKey(id int) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(id))
	return k[:]
}

// NextID allocates an agent number; numbers are never reused, so a path
// such as agents/3 names one agent for the life of the state directory.
func (s *Store) NextID() (int, error) {
	var id int
	err := s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		id = 1
		if v := m.Get(keyNext); len(v) == 8 {
			id = int(binary.BigEndian.Uint64(v))
		}
		return m.Put(keyNext, idKey(id+1))
	})
	return id, err
}

// Put saves a record.
func (s *Store) Put(r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).Put(idKey(r.ID), b)
	})
}

// Delete removes a record.
func (s *Store) Delete(id int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).Delete(idKey(id))
	})
}

// All returns every record in agent-number order.
func (s *Store) All() ([]*Record, error) {
	var out []*Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).ForEach(func(k, v []byte) error {
			r := new(Record)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("agent record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
