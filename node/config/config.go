// Package config reads a node's configuration file. With no file, a node runs as a single replica
// of the demo org with the built-in demo kinds.
//
// config only parses and checks; it never opens sockets or databases.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/knooppunt/knooppunt/node/record"
)

// Config is a node's configuration.
type Config struct {
	// Name is the node's name, shown to users and peers. Default: the org's first label.
	Name string `yaml:"name"`
	// Org is the trust domain of the node's organisation, such as vr-utrecht.crisis.test.
	Org string `yaml:"org"`
	// ReplicaID names this replica in the node's Raft group. Default r1.
	ReplicaID string `yaml:"replica_id"`
	// MetricsAddr is where /metrics listens; empty turns it off.
	MetricsAddr string `yaml:"metrics_addr"`
	Limits      Limits `yaml:"limits"`
	Raft        Raft   `yaml:"raft"`
	// Kinds are the record kinds the node accepts. Empty means the built-in demo kinds.
	Kinds []KindConfig `yaml:"kinds"`
}

// Limits bound what a client may send.
type Limits struct {
	// MaxBodyBytes is the largest record body. Default 1 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
}

// Raft tunes the node's Raft group.
type Raft struct {
	SnapshotThreshold uint64        `yaml:"snapshot_threshold"`
	ElectionTimeout   time.Duration `yaml:"election_timeout"`
}

// KindConfig declares a kind. Its schema is given inline or in a file.
type KindConfig struct {
	record.Kind `yaml:",inline"`
	// SchemaFile is a JSON Schema file, relative to the config file.
	SchemaFile string `yaml:"schema_file"`
}

// DefaultOrg is the org of a node started without a config file.
const DefaultOrg = "local.crisis.test"

// Default is the configuration of a node started without a config file.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

// Load reads and checks the config file at path. Errors name the file, line and field.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict(), yaml.UseJSONUnmarshaler()); err != nil {
		return nil, fmt.Errorf("config %s:\n%s", path, yaml.FormatError(err, false, true))
	}
	for i := range c.Kinds {
		k := &c.Kinds[i]
		if k.SchemaFile == "" {
			continue
		}
		if len(k.Schema) > 0 {
			return nil, fmt.Errorf("config %s: kinds[%d] (%s): give schema or schema_file, not both", path, i, k.Name)
		}
		f := k.SchemaFile
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(path), f)
		}
		if k.Schema, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("config %s: kinds[%d].schema_file: %w", path, i, err)
		}
	}
	c.setDefaults()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	if c.Org == "" {
		c.Org = DefaultOrg
	}
	if c.Name == "" {
		for i := 0; i < len(c.Org); i++ {
			if c.Org[i] == '.' {
				c.Name = c.Org[:i]
				break
			}
		}
		if c.Name == "" {
			c.Name = c.Org
		}
	}
	if c.ReplicaID == "" {
		c.ReplicaID = "r1"
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = record.DefaultMaxBody
	}
}

func (c *Config) check() error {
	if err := record.CheckOrigin("org", c.Org); err != nil {
		return err
	}
	if c.Limits.MaxBodyBytes < 0 {
		return errors.New("limits.max_body_bytes: must be positive")
	}
	_, err := c.KindSet()
	return err
}

// KindSet compiles the declared kinds, or the demo kinds when none are declared.
func (c *Config) KindSet() (*record.Kinds, error) {
	if len(c.Kinds) == 0 {
		return record.NewKinds(record.DemoKinds())
	}
	kinds := make([]record.Kind, len(c.Kinds))
	for i, k := range c.Kinds {
		kinds[i] = k.Kind
	}
	return record.NewKinds(kinds)
}
