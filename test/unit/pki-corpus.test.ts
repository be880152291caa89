import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { NoCertificate, NoPrivateKey, PasswordIncorrect, PfxMalformed, UnsupportedAlgorithm, type IdentityReason } from '../../src/api/v1alpha1/reasons.ts';
import { MAX_MESSAGE_LENGTH } from '../../src/pki/errors.ts';
import { DecodePool, PkiError, defaultDecodeLimits, type BudgetUse, type DecodeLimits, type DecodedIdentity } from '../../src/pki/index.ts';
import { sharedCorpus } from '../support/shared-corpus.ts';

// The real-world corpus (../shared/pfx-corpus, read in place): every file with the password
// its manifest gives, and every file that has a password once more with a wrong one. Each
// run must give the same facts as OpenSSL (subject, serial, notAfter) or a reason that says
// truthfully why not. The table below is what `openssl pkcs12` (OpenSSL 3.0.19, `-legacy`
// where it needs it) made of each file, subject in RFC 4514 order (`-nameopt RFC2253`);
// where OpenSSL and an RFC disagree the RFC wins (RFC 9579's A.4 to A.6 are invalid on
// purpose), and where OpenSSL cannot read a file the comment says why and what it takes.
// A wrong password is PasswordIncorrect unless a row says otherwise.

// A clone without ../shared skips this file outside CI, and fails in CI.
const { path: corpus, skip } = sharedCorpus('pfx-corpus', 'manifest.tsv');

type Outcome =
  { readonly decodes: { readonly subject: string; readonly serialNumber: string; readonly notAfter: string } } | { readonly reason: IdentityReason };

function decodes(subject: string, serial: string, notAfter: string): Outcome {
  // openssl prints the serial in upper case with leading zeros (and a minus for the odd negative one).
  return { decodes: { subject, serialNumber: serial.toLowerCase().replace(/^(-?)0+(?=.)/, '$1'), notAfter } };
}

function refused(reason: IdentityReason): Outcome {
  return { reason };
}

const expected: Readonly<Record<string, { readonly given: Outcome; readonly wrong?: Outcome }>> = {
  'pyca/cert-aes256cbc-no-key': { given: refused(NoPrivateKey) }, // openssl: 1 certificate, no key
  'pyca/cert-key-aes256cbc': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/cert-none-key-none': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/cert-rc2-key-3des': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') }, // openssl needs -legacy
  'pyca/name-1-no-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-1-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-2-3-no-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-2-3-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-2-no-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-2-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-3-no-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-3-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-all-no-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-all-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-unicode-no-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/name-unicode-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/no-cert-key-aes256cbc': { given: refused(NoCertificate) }, // openssl: no certificate, 1 key
  'pyca/no-cert-name-2-no-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-name-2-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-name-3-no-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-name-3-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-name-all-no-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-name-all-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-name-unicode-no-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-name-unicode-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-no-name-no-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-cert-no-name-pwd': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'pyca/no-name-no-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/no-name-pwd': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') },
  'pyca/no-password': { given: decodes('CN=cryptography CA,C=US', '0309', '2038-12-31T08:30:00.000Z') }, // openssl needs -legacy
  'pyca-pkits/ValidCertificatePathTest1EE': { given: decodes('CN=Valid EE Certificate Test1,O=Test Certificates 2011,C=US', '01', '2030-12-31T08:30:00.000Z') },
  'pyca-pkits/InvalidEEnotAfterDateTest6EE': {
    given: decodes('CN=Invalid EE notAfter Date EE Certificate Test6,O=Test Certificates 2011,C=US', '06', '2011-01-01T08:30:00.000Z'),
  },
  'pyca-pkits/TrustAnchorRootCertificate': { given: decodes('CN=Trust Anchor,O=Test Certificates 2011,C=US', '01', '2030-12-31T08:30:00.000Z') },
  'pyca-pkits/BadSignedCACert': { given: decodes('CN=Bad Signed CA,O=Test Certificates 2011,C=US', '03', '2030-12-31T08:30:00.000Z') },
  'pyca-pkits/ValidUTF8StringEncodedNamesTest9EE': {
    given: decodes('CN=Valid UTF8String Encoded Names EE Certificate Test9,O=Test Certificates 2011,C=US', '01', '2030-12-31T08:30:00.000Z'),
  },
  'go-pkcs12/azure-null-pw': { given: decodes('CN=Windows Azure Tools', '67785F39B95BBC8C4F6744828D5CFFD0', '2015-10-02T23:09:11.000Z') }, // openssl needs -legacy
  'go-pkcs12/testing-empty-pw': { given: decodes('CN=testing@example.com', 'F2BC57779A31B4C3', '2014-10-31T23:45:22.000Z') }, // openssl needs -legacy
  'go-pkcs12/win-certmgr-aes256': { given: decodes('CN=*.ad.standalone.com', '278479BD12D91CB544AE7FE18CE060E2', '2021-08-14T18:41:44.000Z') },
  'go-pkcs12/pbes2-aes128': { given: decodes('CN=example-com', '3116D97A9AC7D4891E05006BE509314866ED6603', '2033-10-31T10:59:31.000Z') },
  'go-pkcs12/pbes2-aes192': {
    given: decodes('CN=example-com,O=Internet Widgits Pty Ltd,ST=Some-State,C=AU', '0D4E875DA58FB32F270360B29065D30BC6B07508', '2024-11-02T13:31:42.000Z'),
  },
  'go-pkcs12/rfc9579-a1': { given: decodes('CN=tt,OU=rr,O=ee,L=ww,ST=qq,C=XX', '78E75E6C4C713538D41428A5597F47A1771D16EF', '2023-06-21T13:14:21.000Z') }, // -legacy -nomacver (OpenSSL 3.0 has no PBMAC1)
  'go-pkcs12/rfc9579-a2': { given: decodes('CN=tt,OU=rr,O=ee,L=ww,ST=qq,C=XX', '78E75E6C4C713538D41428A5597F47A1771D16EF', '2023-06-21T13:14:21.000Z') }, // -legacy -nomacver (OpenSSL 3.0 has no PBMAC1)
  'go-pkcs12/rfc9579-a3': { given: decodes('CN=tt,OU=rr,O=ee,L=ww,ST=qq,C=XX', '78E75E6C4C713538D41428A5597F47A1771D16EF', '2023-06-21T13:14:21.000Z') }, // -legacy -nomacver (OpenSSL 3.0 has no PBMAC1)
  'go-pkcs12/rfc9579-a4': { given: refused(PasswordIncorrect) }, // RFC 9579 A.4/A.5: invalid on purpose, the MAC does not verify (OpenSSL 3.0 cannot check PBMAC1 and reads it with -nomacver)
  'go-pkcs12/rfc9579-a5': { given: refused(PasswordIncorrect) }, // RFC 9579 A.4/A.5: invalid on purpose, the MAC does not verify (OpenSSL 3.0 cannot check PBMAC1 and reads it with -nomacver)
  'go-pkcs12/rfc9579-a6': { given: refused(PfxMalformed), wrong: refused(PfxMalformed) }, // RFC 9579 A.6: invalid on purpose, no PBKDF2 keyLength
  'go-pkcs12/pbmac1-short-key-bypass': { given: refused(UnsupportedAlgorithm), wrong: refused(UnsupportedAlgorithm) }, // a 1-byte PBMAC1 key, which RFC 9579 says to refuse: a wrong password verifies it
  'go-pkcs12/pbmac1-short-key-real': { given: refused(UnsupportedAlgorithm), wrong: refused(UnsupportedAlgorithm) }, // a 1-byte PBMAC1 key, which RFC 9579 says to refuse: a wrong password verifies it
  'golang-crypto/windows-ias-peap': {
    given: decodes('CSPName=testing@example.com,CN=Windows IAS PEAP & LDAPS certificates', '78629A0F5F3F164F', '2019-04-17T14:02:14.000Z'),
  }, // openssl needs -legacy
  'golang-crypto/azure-null-pw': { given: decodes('CN=Windows Azure Tools', '67785F39B95BBC8C4F6744828D5CFFD0', '2015-10-02T23:09:11.000Z') }, // openssl needs -legacy
  'forge/p12certonly': { given: refused(NoPrivateKey) }, // openssl: 1 certificate, no key
  'forge/p12keyonly': { given: refused(NoCertificate) }, // openssl: no certificate, 1 key
  'forge/p12enckeyonly': { given: refused(NoCertificate) }, // openssl: no certificate, 1 key
  'forge/p12encmixed': { given: decodes('CN=1002753325,serialNumber=1002753325C', '3B9D0272', '2014-07-28T12:13:57.000Z') }, // openssl needs -legacy
  'forge/p12ecdsa': {
    given: decodes(
      'emailAddress=nizar.abdennebi@gmail.com,CN=nizar.abdennebi@gmail.com,O=erdf,L=Ile,ST=paris,C=FR',
      'EF24D46A35C3FE7C',
      '2015-07-30T16:16:22.000Z',
    ),
  }, // openssl needs -legacy
  'forge/issue1127': { given: decodes('CN=example.com', '687B9D06EA444FE78F3DA7AD64F251F2', '2026-12-01T22:44:32.000Z') },
  'bc-java/pkcs12': {
    given: decodes(
      'emailAddress=dgh@wumpus.com.au,CN=David G. Hook,OU=Digital ID Class 1 - Netscape,OU=Persona Not Validated,OU=www.verisign.com/repository/RPA Incorp. by Ref.\\,LIAB.LTD(c)98,OU=VeriSign Trust Network,O=VeriSign\\, Inc.',
      '4856698E83B0A5BAC5AE8437F23B5AB3',
      '2001-06-14T23:59:59.000Z',
    ),
  }, // openssl needs -legacy
  'bc-java/certUTF': { given: decodes('CN=Geert De Prins,OU=R&D,O=Utimaco,L=Haacht,C=BE', '07', '2019-12-31T23:00:00.000Z') },
  'bc-java/pkcs12noFriendly': {
    given: decodes(
      'emailAddress=Stefan.Schetter@shs.de,CN=Schetter Stefan,OU=600/05949-600/05949,O=SHS Informationssysteme AG,L=\\ ,C=DE',
      '20F0',
      '2005-03-30T11:08:03.000Z',
    ),
  }, // openssl needs -legacy
  'bc-java/pkcs12StorageIssue': { given: decodes('CN=cxc.mlb.com', '61267A09000000000015', '2006-02-11T18:10:04.000Z') }, // openssl needs -legacy
  'bc-java/pkcs12nopass': { given: decodes('CN=Person1,OU=Lab.,O=JUMC,L=Cracow,ST=Malopolska,C=PL', '12', '2005-12-01T10:56:20.000Z') }, // openssl needs -legacy
  'bc-java/gostPfx': { given: refused(UnsupportedAlgorithm), wrong: refused(UnsupportedAlgorithm) }, // GOST R 34.11-94 MAC; OpenSSL without a GOST provider refuses it too
  'bc-java/certChainCycle': { given: decodes('CN=certificate A', '01', '2035-03-17T08:00:53.000Z') }, // openssl needs -legacy
  'bc-java/gostOpenSSLIntegerDPfx': { given: refused(UnsupportedAlgorithm) }, // GOST key; OpenSSL without a GOST provider cannot output it
  'bc-java/certsOnly': { given: refused(NoPrivateKey) }, // openssl: 1 certificate, no key
  'bc-java/JKS_Store': { given: refused(PfxMalformed), wrong: refused(PfxMalformed) }, // a Java JKS keystore, not PKCS#12 (openssl: header too long)
  'bc-java/repeatedLocalKeyIdPfx': { given: decodes('CN=a.onenode.development.run', '039E43CC99BC6A89B28330D52E239F59F2AA', '2018-08-15T06:15:17.000Z') }, // openssl needs -legacy
  'bc-java/rawKeyBagStore': { given: decodes('C=US,CN=ONVIF TT', '08DBAB04A0822BA8', '9999-12-31T23:59:59.000Z') },
  'bc-java/storeBytes': {
    given: decodes('CN=fraboxpd1953-p12test.de.db.com,O=Deutsche Bank AG,DC=db,DC=com', 'AB34FF80A3B51E81F2C2FA', '2025-04-26T17:00:00.000Z'),
  }, // openssl needs -legacy
  'bc-java/_non_PBMAC1_PKCS12': { given: decodes('CN=oreste', '50F3A2055590372EBAF16969BD89019C4B5363E7', '2027-02-11T06:11:22.000Z') },
  'bc-java/sha256Pfx': { given: refused(NoCertificate) }, // openssl: no certificate, 1 key
  'bc-java/pkcs5Aes128Pfx': {
    given: decodes('CN=BC Test PKCS12,O=The Legion of the Bouncy Castle,L=Melbourne,ST=Victoria,C=AU', 'AAEBFAD5937430F3', '2018-02-28T23:51:08.000Z'),
  }, // openssl needs -legacy
  'bc-java/pkcs5Aes192Pfx': {
    given: decodes('CN=BC Test PKCS12,O=The Legion of the Bouncy Castle,L=Melbourne,ST=Victoria,C=AU', 'AAEBFAD5937430F3', '2018-02-28T23:51:08.000Z'),
  }, // openssl needs -legacy
  'bc-java/pkcs5Camellia128Pfx': {
    given: decodes('CN=BC Test PKCS12,O=The Legion of the Bouncy Castle,L=Melbourne,ST=Victoria,C=AU', 'AAEBFAD5937430F3', '2018-02-28T23:51:08.000Z'),
  }, // openssl needs -legacy
  'bc-java/pkcs5Camellia256Pfx': {
    given: decodes('CN=BC Test PKCS12,O=The Legion of the Bouncy Castle,L=Melbourne,ST=Victoria,C=AU', 'AAEBFAD5937430F3', '2018-02-28T23:51:08.000Z'),
  }, // openssl needs -legacy
  'bc-java/pkcs5Cast5Pfx': {
    given: decodes('CN=BC Test PKCS12,O=The Legion of the Bouncy Castle,L=Melbourne,ST=Victoria,C=AU', 'AAEBFAD5937430F3', '2018-02-28T23:51:08.000Z'),
  }, // openssl needs -legacy
  'bc-java/pkcs5TripleDesPfx': {
    given: decodes(
      'emailAddress=feedback-crypto@bouncycastle.org,CN=Eric H. Echidna,L=Melbourne,O=The Legion of the Bouncy Castle,C=AU',
      '03',
      '2015-12-09T22:10:46.000Z',
    ),
  }, // openssl needs -legacy
  'bc-java/gostPfxFoo123': { given: refused(UnsupportedAlgorithm), wrong: refused(UnsupportedAlgorithm) }, // GOST R 34.11-94 MAC; OpenSSL without a GOST provider refuses it too
  'bc-java/sample_cacerts': { given: refused(NoPrivateKey) }, // openssl: 7 certificates, no key
  'bc-java/with-key-entry': { given: decodes('CN=Issuer', '0846CE38787906DD', '2027-03-09T08:57:21.000Z') }, // openssl reads it given the ISO-8859-1 bytes (see with-key-entry-latin1); PBKDF2 took those bytes
  'bc-java/empty': { given: refused(NoCertificate) }, // an empty JSafe keystore: openssl, given the ISO-8859-1 bytes, finds no certificate and no key
  'bc-java/rsa3-self-testcase-A': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-B': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-C': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-D': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-E': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-F': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-G': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-H': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-I': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-J': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/rsa3-self-testcase-L': { given: decodes('CN=localhost,OU=a,O=My Company Ltd,L=Newbury,ST=Berkshire,C=GB', '00', '2007-09-13T18:26:32.000Z') }, // openssl needs -legacy
  'bc-java/johndoe': { given: decodes('CN=John Doe', 'D2D5D0824497D4B6', '2015-04-15T04:33:32.000Z') }, // openssl needs -legacy
  'openjdk/os6-pbmac1': { given: decodes('CN=A', 'AB657BE299CB2E6E', '2025-12-31T17:52:39.000Z') }, // -legacy -nomacver (OpenSSL 3.0 has no PBMAC1)
  'rust-openssl/identity': { given: decodes('CN=foobar.com,O=Internet Widgits Pty Ltd,ST=Some-State,C=AU', '8771F7BDEE982FA5', '2026-08-12T17:00:03.000Z') }, // openssl needs -legacy
  'rust-openssl/keystore-empty-chain': { given: decodes('CN=database,OU=cluster,O=company,C=DE', '026E7917', '2117-01-30T07:34:07.000Z') }, // openssl needs -legacy
  'rust-openssl/cms': {
    given: decodes('CN=openssl-rust,OU=openssl-rust,O=openssl-rust,ST=Some-State,C=US', '7F057256F6215F99031B202F84C7B44EA842A2D3', '2292-11-06T21:10:15.000Z'),
  }, // openssl needs -legacy
  'ruby-openssl/no-keys': { given: refused(NoPrivateKey) }, // openssl: 1 certificate, no key
  'ruby-openssl/no-certs': { given: refused(NoCertificate) }, // openssl: no certificate, 1 key
  'openssl/shibboleth': { given: decodes('CN=anonymous', '36EDF6873AA108A7470135F36E8C8811', '2116-06-25T22:00:01.000Z') },
  'openssl/v3-certs-RC2': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'openssl/v3-certs-TDES': { given: refused(NoPrivateKey) }, // openssl: 2 certificates, no key
  'openssl/signer': { given: decodes('CN=leaf,O=Internet Widgits Pty Ltd,ST=Some-State,C=AU', 'A44DB0329A714A8D', '2035-07-02T13:19:49.000Z') },
  'openssl/bad1': { given: refused(PfxMalformed) }, // malformed on purpose (openssl: decode error)
  'openssl/bad2': { given: refused(PfxMalformed) }, // malformed on purpose (openssl: decode error)
  'openssl/bad3': { given: refused(PfxMalformed) }, // malformed on purpose (openssl: decode error)
  'openssl/garbage-pkcs12': { given: refused(PfxMalformed) }, // garbage (openssl: decode error)
  'dotnet/net-td-contoso.com': { given: decodes('CN=testserver.contoso.com', '540000002DEA4C0BD56276997800000000002D', '2035-11-05T01:27:05.000Z') }, // openssl needs -legacy
  'dotnet/net-td-testclient1_at_contoso.com': {
    given: decodes('CN=Test Client1,DC=Contoso,DC=com', '540000002E5C18F395955DACC900000000002E', '2035-11-06T20:55:23.000Z'),
  }, // openssl needs -legacy
  'dotnet/net-td-testclienteku.contoso.com.noRC2': {
    given: decodes('CN=testclienteku.contoso.com', '5400000034FF7BDFF5AC1D4540000000000034', '2036-12-29T20:59:27.000Z'),
  },
  'dotnet/net-td-testclienteku.contoso.com': {
    given: decodes('CN=testclienteku.contoso.com', '5400000034FF7BDFF5AC1D4540000000000034', '2036-12-29T20:59:27.000Z'),
  }, // openssl needs -legacy
  'dotnet/net-td-testnoeku.contoso.com.noRC2': {
    given: decodes('CN=testnoeku.contoso.com', '540000003187C0752603AAA11B000000000031', '2036-12-28T20:10:33.000Z'),
  },
  'dotnet/net-td-testnoeku.contoso.com': { given: decodes('CN=testnoeku.contoso.com', '540000003187C0752603AAA11B000000000031', '2036-12-28T20:10:33.000Z') }, // openssl needs -legacy
  'dotnet/net-td-testselfsignedclienteku.contoso.com': {
    given: decodes('CN=testselfsignedclienteku.contoso.com', '5868F13B96CC1BA646DB495D16D8A66B', '2035-01-18T00:00:00.000Z'),
  },
  'dotnet/net-td-testselfsignedservereku.contoso.com': {
    given: decodes('CN=testselfsignedservereku.contoso.com', '7E6B6A8748F4138C4A384B5072DDA00C', '2035-01-18T00:00:00.000Z'),
  },
  'dotnet/net-td-testservereku.contoso.com.noRC2': {
    given: decodes('CN=testservereku.contoso.com', '54000000320F036BF59292AA2F000000000032', '2036-12-29T20:53:49.000Z'),
  },
  'dotnet/net-td-testservereku.contoso.com': {
    given: decodes('CN=testservereku.contoso.com', '54000000320F036BF59292AA2F000000000032', '2036-12-29T20:53:49.000Z'),
  }, // openssl needs -legacy
  'dotnet/net-tdc-contoso.com': { given: decodes('CN=testserver.contoso.com', '540000002DEA4C0BD56276997800000000002D', '2035-11-05T01:27:05.000Z') },
  'dotnet/net-tdc-testclient1_at_contoso.com': {
    given: decodes('CN=Test Client1,DC=Contoso,DC=com', '540000002E5C18F395955DACC900000000002E', '2035-11-06T20:55:23.000Z'),
  },
  'dotnet/net-tdc-testclienteku.contoso.com': {
    given: decodes('CN=testclienteku.contoso.com', '5400000034FF7BDFF5AC1D4540000000000034', '2036-12-29T20:59:27.000Z'),
  },
  'dotnet/net-tdc-testnoeku.contoso.com': { given: decodes('CN=testnoeku.contoso.com', '540000003187C0752603AAA11B000000000031', '2036-12-28T20:10:33.000Z') },
  'dotnet/net-tdc-testselfsignedclienteku.contoso.com': {
    given: decodes('CN=testselfsignedclienteku.contoso.com', '5868F13B96CC1BA646DB495D16D8A66B', '2035-01-18T00:00:00.000Z'),
  },
  'dotnet/net-tdc-testselfsignedservereku.contoso.com': {
    given: decodes('CN=testselfsignedservereku.contoso.com', '7E6B6A8748F4138C4A384B5072DDA00C', '2035-01-18T00:00:00.000Z'),
  },
  'dotnet/net-tdc-testservereku.contoso.com': {
    given: decodes('CN=testservereku.contoso.com', '54000000320F036BF59292AA2F000000000032', '2036-12-29T20:53:49.000Z'),
  },
  'dotnet/x509-DummyTcpServer': {
    given: decodes(
      'emailAddress=fwtlaba@microsoft.com,CN=mycert,OU=microsoft,O=microsoft,L=bellevue,ST=Wa,C=US',
      '216F9B9500020000002C',
      '2007-01-13T22:56:11.000Z',
    ),
  }, // openssl needs -legacy
  'dotnet/x509-DummyTcpServer.noRC2': {
    given: decodes(
      'emailAddress=fwtlaba@microsoft.com,CN=mycert,OU=microsoft,O=microsoft,L=bellevue,ST=Wa,C=US',
      '216F9B9500020000002C',
      '2007-01-13T22:56:11.000Z',
    ),
  },
  'dotnet/x509-test': {
    given: decodes('emailAddress=crispop@microsoft.com,CN=test.local,OU=TEST,O=TEST,L=Redmond,ST=WA,C=US', '15EAA83A000100009291', '2031-12-13T22:26:07.000Z'),
  }, // openssl needs -legacy
  'dotnet/x509-test.noRC2': {
    given: decodes('emailAddress=crispop@microsoft.com,CN=test.local,OU=TEST,O=TEST,L=Redmond,ST=WA,C=US', '15EAA83A000100009291', '2031-12-13T22:26:07.000Z'),
  },
  'dotnet/x509-My': { given: decodes('CN=MyName', '-2A4A43E3BA75AA77BA400AE34B200CE4', '2011-04-01T08:00:00.000Z') }, // openssl needs -legacy
  'dotnet/x509-My.noRC2': { given: decodes('CN=MyName', '-2A4A43E3BA75AA77BA400AE34B200CE4', '2011-04-01T08:00:00.000Z') },
  'bc-java/with-key-entry-latin1': { given: decodes('CN=Issuer', '0846CE38787906DD', '2027-03-09T08:57:21.000Z') },
  'pyca/cert-rc2-key-3des@wrong': { given: refused(PasswordIncorrect) }, // openssl: Mac verify error
  'pyca/cert-key-aes256cbc@wrong': { given: refused(PasswordIncorrect) }, // openssl: Mac verify error
  'pyca/cert-key-aes256cbc@missing': { given: refused(PasswordIncorrect) }, // openssl: Mac verify error
  'go-pkcs12/rfc9579-a1@wrong': { given: refused(PasswordIncorrect) }, // openssl: Mac verify error
  'forge/p12enckeyonly@wrong': { given: refused(PasswordIncorrect) }, // openssl: no MAC, and the key does not decrypt
  'dotnet/x509-DummyTcpServer@wrong': { given: refused(PasswordIncorrect) }, // openssl: Mac verify error
  'dotnet/x509-My@missing': { given: refused(PasswordIncorrect) }, // openssl: Mac verify error
};

interface Run {
  readonly name: string;
  readonly file: string;
  readonly password: Uint8Array | undefined;
  readonly expected: Outcome;
}

const WRONG_PASSWORD = Buffer.from('not-the-password');

function runs(): Run[] {
  const rows = readFileSync(join(corpus, 'manifest.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split('\t'));
  const ids = rows.map(([id]) => id!);
  assert.deepEqual([...ids].sort(), Object.keys(expected).sort(), 'the table has one row per manifest row');
  return rows.flatMap(([id, file, , , password]) => {
    // The exact bytes of each password are in pw/; a password Secret hands them over as they are.
    const passwordFile = join(corpus, 'pw', `${id!.replaceAll('/', '__')}.pw`);
    const bytes = password === 'none' ? undefined : existsSync(passwordFile) ? readFileSync(passwordFile) : new Uint8Array(0);
    const row = expected[id!]!;
    const given: Run = {
      name: `${id} (${password === 'none' ? 'no password' : 'its password'})`,
      file: join(corpus, file!),
      password: bytes,
      expected: row.given,
    };
    if (bytes === undefined || bytes.length === 0 || id!.includes('@')) return [given];
    return [
      given,
      { name: `${id} (a wrong password)`, file: join(corpus, file!), password: WRONG_PASSWORD, expected: row.wrong ?? refused(PasswordIncorrect) },
    ];
  });
}

describe('the real-world PFX corpus: the same facts as OpenSSL, or a truthful reason', { skip }, () => {
  const pool = new DecodePool();
  after(() => pool.close());
  const spent: { name: string; use: BudgetUse }[] = [];

  for (const run of runs()) {
    test(run.name, async () => {
      let outcome: DecodedIdentity | unknown;
      try {
        outcome = await pool.decode(
          { kind: 'pfx', pfx: readFileSync(run.file), password: run.password },
          { onBudgetUse: (use) => spent.push({ name: run.name, use }) },
        );
      } catch (error) {
        outcome = error;
      }
      if ('decodes' in run.expected) {
        assert.ok(!(outcome instanceof Error), `expected it to decode: ${String(outcome)}`);
        const { facts } = outcome as DecodedIdentity;
        assert.deepEqual(
          { subject: facts.subject, serialNumber: facts.serialNumber, notAfter: facts.notAfter.toISOString() },
          {
            ...run.expected.decodes,
            notAfter: new Date(run.expected.decodes.notAfter).toISOString(),
          },
        );
        return;
      }
      assert.ok(outcome instanceof PkiError, `expected ${run.expected.reason}, got ${outcome instanceof Error ? outcome.message : 'an identity'}`);
      assert.equal(outcome.reason, run.expected.reason, outcome.message);
      assert.ok(outcome.message.length <= MAX_MESSAGE_LENGTH);
    });
  }

  // Every legitimate file must pass the decode budget with room to spare: an eighth of each limit at most.
  test('every run stays within an eighth of each decode limit', () => {
    const limits: Record<keyof BudgetUse, keyof DecodeLimits> = {
      inputBytes: 'maxInputBytes',
      kdfWork: 'maxKdfWork',
      scryptMemoryBytes: 'maxScryptMemoryBytes',
      bags: 'maxBags',
      certificates: 'maxCertificates',
      keys: 'maxKeys',
    };
    assert.ok(spent.length > 0);
    for (const { name, use } of spent) {
      for (const [measure, limit] of Object.entries(limits) as [keyof BudgetUse, keyof DecodeLimits][]) {
        assert.ok(use[measure] * 8 <= defaultDecodeLimits[limit], `${name}: ${measure} ${use[measure]} is more than an eighth of ${limit}`);
      }
    }
  });
});
