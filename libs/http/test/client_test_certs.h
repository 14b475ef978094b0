// Test PKI for the HTTP client tests: a throwaway CA and a server certificate it signs,
// generated with OpenSSL at test start.
#pragma once

#include <string>

namespace atrium::http::testing {

struct TestPki {
  std::string ca_cert_file;      // PEM, the CA the client is told to trust
  std::string server_cert_file;  // PEM, subjectAltName DNS:localhost only
  std::string server_key_file;   // PEM
};

// Writes the files into `dir`. The server certificate names only "localhost" (no IP address),
// so that https://127.0.0.1 fails hostname verification. Aborts the test binary on failure.
TestPki GenerateTestPki(const std::string& dir);

}  // namespace atrium::http::testing
