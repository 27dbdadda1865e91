package caddymodule

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// openAPIYAML is the OpenAPI 3.1 document of hook_webhooks, written in
// YAML. Its one server is "/", which each handler replaces with its
// prefix.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIServer is the line of openAPIYAML that names the server.
const openAPIServer = `  - url: "/"` + "\n"

// openAPIDocument returns the document for a handler mounted at prefix,
// in YAML and in JSON (converted in the YAML's order).
func openAPIDocument(prefix string) (yamlDoc, jsonDoc []byte, err error) {
	if bytes.Count(openAPIYAML, []byte(openAPIServer)) != 1 {
		return nil, nil, errors.New("the document does not name its server as expected")
	}
	server := prefix
	if server == "" {
		server = "/"
	}
	// A JSON string is a YAML double-quoted scalar.
	quoted, err := json.Marshal(server)
	if err != nil {
		return nil, nil, err
	}
	yamlDoc = bytes.Replace(openAPIYAML, []byte(openAPIServer), []byte(`  - url: `+string(quoted)+"\n"), 1)
	var root yaml.Node
	if err := yaml.Unmarshal(yamlDoc, &root); err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	if err := yamlNodeJSON(&b, &root); err != nil {
		return nil, nil, err
	}
	return yamlDoc, b.Bytes(), nil
}

// yamlNodeJSON writes n as JSON, mappings in their order, following
// aliases and merge keys ("<<"), whose members come where the merge key
// is unless the mapping sets them itself.
func yamlNodeJSON(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return errors.New("an empty document")
		}
		return yamlNodeJSON(b, n.Content[0])
	case yaml.AliasNode:
		return yamlNodeJSON(b, n.Alias)
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := yamlNodeJSON(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case yaml.MappingNode:
		pairs, err := yamlPairs(n, 0)
		if err != nil {
			return err
		}
		b.WriteByte('{')
		for i, p := range pairs {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(p[0].Value)
			b.Write(k)
			b.WriteByte(':')
			if err := yamlNodeJSON(b, p[1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return err
		}
		out, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		b.Write(out)
		return nil
	}
	return fmt.Errorf("line %d: unexpected YAML node kind %d", n.Line, n.Kind)
}

// yamlPairs returns a mapping's key and value nodes with its merge keys
// expanded.
func yamlPairs(n *yaml.Node, depth int) ([][2]*yaml.Node, error) {
	if depth > 16 {
		return nil, errors.New("merge keys nest too deep")
	}
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: a merge key must name a mapping", n.Line)
	}
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a key that is not a string", k.Line)
		} else if k.ShortTag() != "!!merge" {
			own[k.Value] = true
		}
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() != "!!merge" {
			out = append(out, [2]*yaml.Node{k, v})
			seen[k.Value] = true
			continue
		}
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, src := range sources {
			merged, err := yamlPairs(src, depth+1)
			if err != nil {
				return nil, err
			}
			for _, p := range merged {
				if !own[p[0].Value] && !seen[p[0].Value] {
					out = append(out, p)
					seen[p[0].Value] = true
				}
			}
		}
	}
	return out, nil
}
