// Checks of a configuration file's shape before it is decoded: sizes,
// and keys Pyramid does not know.

package config

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Bounds on a configuration file. Decoding a YAML mapping into a Go map
// takes time quadratic in its keys (400,000 fx_rates took over ten
// minutes), so sizes are checked on the parsed nodes, which take linear
// time, before anything is decoded.
const (
	MaxFileSize = 1 << 20 // bytes
	MaxEntries  = 1000    // keys of one mapping, items of one list
)

// checkSizes refuses a mapping or list with more than MaxEntries entries,
// naming it by its path.
func checkSizes(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkSizes(c, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		if k := len(n.Content) / 2; k > MaxEntries {
			return fmt.Errorf("%s: %d keys; a mapping may hold at most %d (line %d)", orRoot(path), k, MaxEntries, n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkSizes(n.Content[i+1], join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if k := len(n.Content); k > MaxEntries {
			return fmt.Errorf("%s: %d items; a list may hold at most %d (line %d)", orRoot(path), k, MaxEntries, n.Line)
		}
		for i, c := range n.Content {
			if err := checkSizes(c, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkKeys walks a mapping node against the struct type t and reports the
// first key t has no field for, by its full path.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: must be a mapping (line %d)", orRoot(path), n.Line)
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fields[name] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := join(path, k)
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d); known keys here: %s", p, n.Content[i].Line, known(fields))
			}
			if err := checkKeys(n.Content[i+1], ft, p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
			return fmt.Errorf("%s: must be a list (line %d)", path, n.Line)
		}
		for i, e := range n.Content {
			if err := checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
			return fmt.Errorf("%s: must be a mapping (line %d)", path, n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			// yaml.v3 drops a null key (`~:` or `null:`) from a Go map
			// without a word; refuse it instead of losing the entry.
			if k := n.Content[i]; k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
				return fmt.Errorf("%s: %q is not a valid key (line %d)", path, k.Value, k.Line)
			}
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: must be a single value (line %d)", path, n.Line)
		}
		// Decode the scalar alone so a type error names its key.
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			if _, own := v.Interface().(yaml.Unmarshaler); own {
				return fmt.Errorf("%s: %v (line %d)", path, err, n.Line)
			}
			return fmt.Errorf("%s: %q is not a valid %s (line %d)", path, n.Value, t.Kind(), n.Line)
		}
		// yaml.v3 truncates a float into an int field (1.5 becomes 1).
		if t.Kind() == reflect.Int && n.ShortTag() == "!!float" {
			var f float64
			if err := n.Decode(&f); err != nil || f != math.Trunc(f) {
				return fmt.Errorf("%s: %q is not a whole number (line %d)", path, n.Value, n.Line)
			}
		}
	}
	return nil
}

func orRoot(p string) string {
	if p == "" {
		return "config"
	}
	return p
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func known(fields map[string]reflect.Type) string {
	return strings.Join(slices.Sorted(maps.Keys(fields)), ", ")
}
