package raccoon_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	raccoon "raccoon/clients/go"
)

// testCA writes a CA, a server certificate it signed for localhost and 127.0.0.1, and a
// client certificate, as PEM files in dir; it returns their paths.
type testCA struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newTestCA(t *testing.T) testCA {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "raccoon go test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, hosts []string, ips []net.IP) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			DNSNames: hosts, IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der), write(name+".key", "PRIVATE KEY", keyDER)
	}
	c := testCA{ca: write("ca.pem", "CERTIFICATE", caDER)}
	c.serverCert, c.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	c.clientCert, c.clientKey = issue("partner", 3, x509.ExtKeyUsageClientAuth, []string{"partner"}, nil)
	return c
}

// TestRealServerOverTLS sends a batch over wss://, https:// and gRPC over TLS with the test
// CA as the only root, and reads every event back from Kafka; then the same with a client
// certificate against a server that requires one, which refuses a client without.
func TestRealServerOverTLS(t *testing.T) {
	ca := newTestCA(t)
	for _, mtls := range []bool{false, true} {
		env := []string{"SERVER_TLS_CERT_FILE=" + ca.serverCert, "SERVER_TLS_KEY_FILE=" + ca.serverKey, "EVENT_ACK=1"}
		if mtls {
			env = append(env, "SERVER_TLS_CLIENT_CA_FILE="+ca.ca)
		}
		srv := startServer(t, env...)
		certFile, keyFile := "", ""
		if mtls {
			certFile, keyFile = ca.clientCert, ca.clientKey
		}
		cfg, err := raccoon.TLSConfig(ca.ca, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		typ := eventType("tls")
		wss := strings.Replace(srv.WSURL(), "ws://", "wss://", 1)
		rest := strings.Replace(srv.RestURL(), "http://", "https://", 1)
		clients := map[string]func(...raccoon.ClientOption) (raccoon.Client, error){
			"wss": func(o ...raccoon.ClientOption) (raccoon.Client, error) {
				return raccoon.NewWebSocket(append([]raccoon.ClientOption{raccoon.WithURL(wss)}, o...)...)
			},
			"https": func(o ...raccoon.ClientOption) (raccoon.Client, error) {
				return raccoon.NewRest(append([]raccoon.ClientOption{raccoon.WithURL(rest)}, o...)...)
			},
			"grpc": func(o ...raccoon.ClientOption) (raccoon.Client, error) {
				return raccoon.NewGrpc(append([]raccoon.ClientOption{raccoon.WithAddr(srv.GRPCAddr)}, o...)...)
			},
		}
		for name, open := range clients {
			c, err := open(raccoon.WithTLS(cfg), raccoon.WithHeader("X-User-ID", name), raccoon.WithRetry(1, time.Millisecond, time.Millisecond), quiet)
			if err != nil {
				t.Fatalf("%s (mtls %v): %v", name, mtls, err)
			}
			sendAndCheck(t, c, []*raccoon.Event{{Type: typ, Data: []byte(name)}})
			c.Close()
		}
		if got := consume(t, topicOf(typ), 3, time.Second); len(got) != 3 {
			t.Fatalf("mtls %v: %d records, want 3", mtls, len(got))
		}
		if mtls {
			anonymous, _ := raccoon.TLSConfig(ca.ca, "", "")
			if _, err := raccoon.NewWebSocket(raccoon.WithURL(wss), raccoon.WithTLS(anonymous), quiet); err == nil {
				t.Fatal("a client without a certificate was served")
			}
		}
	}
	if _, err := raccoon.TLSConfig(ca.ca, ca.clientCert, ""); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}
