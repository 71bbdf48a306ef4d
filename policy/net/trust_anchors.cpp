#include "policy/net/trust_anchors.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

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

}  // namespace mtasts::policy::net
