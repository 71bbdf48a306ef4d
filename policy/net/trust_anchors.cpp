#include "policy/net/trust_anchors.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace mtasts::policy::net {
namespace {

int load_system_anchors(X509_STORE* store) {
  if (X509_STORE_load_file(store, X509_get_default_cert_file()) == 1) return 1;
  return X509_STORE_set_default_paths(store);
}

void fill_extension_caches(X509_STORE* store) {
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i)
    if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) X509_check_purpose(cert, -1, 0);
}

}  // namespace

bool load_trust_anchors(X509_STORE* store, const std::string& ca_file) {
  const int loaded =
      ca_file.empty() ? load_system_anchors(store) : X509_STORE_load_file(store, ca_file.c_str());
  ERR_clear_error();
  if (loaded != 1) return false;
  fill_extension_caches(store);
  return true;
}

SharedTrustStore::SharedTrustStore(const std::string& ca_file, std::string_view what) : store_(nullptr) {
  // A CA file that cannot be read would fail every connection as a
  // certificate problem of the server: refuse it here, at start-up or reload.
  std::error_code ec;
  if (!ca_file.empty() &&
      (!std::filesystem::is_regular_file(ca_file, ec) || !std::ifstream{ca_file}.is_open()))
    throw std::runtime_error(std::string(what) + " " + ca_file + " cannot be read.");
  store_ = X509_STORE_new();
  if (store_ == nullptr) throw std::runtime_error("cannot make a certificate store");
  if (!load_trust_anchors(store_, ca_file)) {
    X509_STORE_free(store_);
    throw std::runtime_error(ca_file.empty()
                                 ? std::string("the system trust store cannot be read.")
                                 : std::string(what) + " " + ca_file + " holds no usable certificate.");
  }
  X509_STORE_set_flags(store_, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_TRUSTED_FIRST);
}

SharedTrustStore::~SharedTrustStore() { X509_STORE_free(store_); }

}  // namespace mtasts::policy::net
