"""What an operator can paste to fix each check: Exchange Management Shell first, generic second.

One text per check id of the catalog (docs/checks.md). The Exchange commands are those of the
Exchange Management Shell; `<CAS>`, `<thumb>` and `mail.contoso.com` are placeholders the
operator replaces. Pass and skip results carry no remediation.
"""

from __future__ import annotations

# Changes to Set-PopSettings take effect only after the POP3 services restart, and operators
# who rescan right after a change otherwise see the old behaviour and lose trust in the tool.
_RESTART = (
    "then restart POP3: `Restart-Service MSExchangePOP3; Restart-Service MSExchangePOP3BE` "
    "(Exchange 2013 and later; `Restart-Service MSExchangePOP3` on 2010)."
)

REMEDIATION: dict[str, str] = {
    "pop3s.available": (
        "Exchange: bind a certificate to POP and listen on 995: "
        "`Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP`, "
        "`Set-PopSettings -Server <CAS> -X509CertificateName mail.contoso.com "
        "-SSLBindings 0.0.0.0:995,[::]:995`, " + _RESTART + " A plaintext "
        "`-ERR Connection is closed. 13` on 995 means no certificate matches X509CertificateName. "
        "Check `Get-Service MSExchangePOP3*` and that firewalls pass TCP 995. "
        "Generic: enable the implicit-TLS listener with a valid certificate (Dovecot: "
        "`service pop3-login { inet_listener pop3s { port = 995 } }` with `ssl_cert`/`ssl_key`)."
    ),
    "pop3.plaintext_login": (
        "Exchange: `Set-PopSettings -Server <CAS> -LoginType SecureLogin`, " + _RESTART + " "
        "If policy allows implicit TLS only, remove the :110 entries from "
        "`-UnencryptedOrTLSBindings` and keep `-SSLBindings 0.0.0.0:995,[::]:995` "
        "(see `Get-PopSettings | Format-List *Bindings`). "
        "Generic: refuse passwords before TLS (Dovecot 2.3: `disable_plaintext_auth = yes` and "
        "`ssl = required`; Dovecot 2.4: `auth_allow_cleartext = no`); to close port 110, set "
        "`service pop3-login { inet_listener pop3 { port = 0 } }`."
    ),
    "pop3.stls": (
        "Exchange: STLS is offered only when a certificate matches X509CertificateName: "
        "`Set-PopSettings -Server <CAS> -X509CertificateName mail.contoso.com` or "
        "`Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP`, " + _RESTART + " "
        "Generic: enable TLS on the cleartext listener (Dovecot: `ssl = yes` or `ssl = required` "
        "with `ssl_cert`/`ssl_key`), or close port 110 and use 995 only (RFC 8314)."
    ),
    "pop3.tls_login": (
        "Check the monitoring account's password (stored for this server in PopCompliance, or "
        "`POPC_LOGIN_PASSWORD` for the command line). "
        "Exchange: make sure the mailbox may use POP3: `Set-CASMailbox <user> -PopEnabled $true` "
        "(check with `Get-CASMailbox <user> | Format-List PopEnabled`), and that the account is "
        "neither locked out nor disabled (`Get-ADUser <user> -Properties LockedOut,Enabled`, "
        "`Unlock-ADAccount <user>`). Generic: check the account in the server's password "
        "database (Dovecot: `doveadm auth test <user>`) and its log for the refused login."
    ),
    "tls.protocols": (
        "Exchange (Schannel): for each of SSL 2.0, SSL 3.0, TLS 1.0 and TLS 1.1 set `Enabled`=0 "
        "and `DisabledByDefault`=1 under "
        "`HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\"
        "<version>\\Server`, make sure TLS 1.2 is enabled there (and TLS 1.3 on Windows Server "
        "2022), and reboot; the CSS-Exchange HealthChecker script reports the result. "
        "Generic: accept only the versions the policy's TLS profile allows (Dovecot: "
        "`ssl_min_protocol = TLSv1.2`; Courier: `TLS_PROTOCOL=TLS1_2+`; Cyrus: "
        "`tls_versions: tls1_2 tls1_3`; Postfix: `smtpd_tls_protocols = >=TLSv1.2`), per RFC 8996 "
        "and RFC 8997."
    ),
    "tls.ciphers": (
        "Exchange (Schannel): list what is enabled with `Get-TlsCipherSuite | Format-Table Name`, "
        "remove each suite the summary names with `Disable-TlsCipherSuite -Name "
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA` (Windows Server 2016 and later), or set the order in "
        "Group Policy (Computer Configuration > Administrative Templates > Network > SSL "
        "Configuration Settings > SSL Cipher Suite Order); on 2008 R2 and 2012 R2 set `Enabled`=0 "
        "under `HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\"
        "Ciphers\\RC4 128/128` (and `RC4 40/128`, `RC4 56/128`, `Triple DES 168`, `DES 56/56`, "
        "`NULL`), and `Hashes\\MD5`; for a DH prime under the minimum set `ServerMinKeyBitLength` "
        "= 2048 under `...\\SCHANNEL\\KeyExchangeAlgorithms\\Diffie-Hellman`. Reboot. "
        "Generic: offer forward-secret AEAD suites only (Dovecot: `ssl_cipher_list = "
        "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM` and `ssl_prefer_server_ciphers = yes`, "
        "`ssl_dh` with a 2048-bit or larger prime; Courier: "
        '`TLS_PRIORITY="NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:'
        '+AES-128-GCM:+CHACHA20-POLY1305:-RSA"`; Cyrus: `tls_ciphers: '
        "ECDHE+AESGCM:ECDHE+CHACHA20` and `tls_prefer_server_ciphers: 1`; Postfix: "
        "`smtpd_tls_mandatory_ciphers = high`, `tls_high_cipherlist = "
        "ECDHE+AESGCM:ECDHE+CHACHA20` and `smtpd_tls_exclude_ciphers = RC4, 3DES, aNULL, MD5`)."
    ),
    "cert.trusted": (
        'Exchange: replace the self-signed "Microsoft Exchange" certificate with one from a CA '
        "your clients trust: `New-ExchangeCertificate -GenerateRequest -SubjectName "
        "CN=mail.contoso.com -DomainName mail.contoso.com -PrivateKeyExportable $true`, "
        "then `Import-ExchangeCertificate` and `Enable-ExchangeCertificate -Thumbprint <thumb> "
        "-Services POP`; install the issuing intermediate in the computer's Intermediate "
        "Certification Authorities store so the full chain is served; " + _RESTART + " "
        "Generic: serve leaf plus intermediates (Dovecot: `ssl_cert` holds the full chain). "
        "For an internal CA, add its root to the policy's CA bundle."
    ),
    "cert.name": (
        "Exchange: bind a certificate whose SAN holds the name users connect to: "
        "`Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP` or "
        "`Set-PopSettings -Server <CAS> -X509CertificateName mail.contoso.com`, " + _RESTART + " "
        "Generic: issue a certificate with that name in subjectAltName and serve it, or point "
        "clients at a name the certificate covers."
    ),
    "cert.validity": (
        "Exchange: find it with `Get-ExchangeCertificate | Format-List "
        "Thumbprint,Subject,NotAfter,Services`, renew it (`Get-ExchangeCertificate -Thumbprint "
        "<thumb> | New-ExchangeCertificate -GenerateRequest`, then `Import-ExchangeCertificate`), "
        "bind the new one with `Enable-ExchangeCertificate -Thumbprint <new> -Services POP`, "
        + _RESTART
        + ' For "not yet valid", check the server and CA clocks. '
        "Generic: renew before expiry, ideally automatically (ACME), and reload the server."
    ),
    "cert.strength": (
        "Exchange: request a new certificate with an RSA key of at least 2048 bits and a SHA-256 "
        "signature (`New-ExchangeCertificate -GenerateRequest -KeySize 2048 ...`), import it "
        "and `Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP`; the default "
        "self-signed Exchange certificate is signed with SHA-1 and must not serve POP. "
        + _RESTART
        + " Generic: RSA 2048+ or ECDSA P-256+, SHA-256+ signatures, intermediates likewise."
    ),
    "cert.consistent": (
        "Exchange: serve one certificate from every server behind the name and on both 995 and "
        "STLS: `Export-ExchangeCertificate` it from one server, `Import-ExchangeCertificate` on "
        "the others, `Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP` and the same "
        "`Set-PopSettings -X509CertificateName mail.contoso.com` everywhere, " + _RESTART + " "
        "Generic: deploy the same certificate to every node and listener."
    ),
    "dns.resolves": (
        "Publish A/AAAA records for the service name (Windows DNS: `Add-DnsServerResourceRecordA "
        "-ZoneName contoso.com -Name mail -IPv4Address <ip>`), or scan the name users really "
        "connect to (`--name`). Generic: add the records in the authoritative zone."
    ),
    "dns.srv": (
        "Exchange does not publish SRV records; add them in DNS (RFC 6186). Windows DNS: "
        "`Add-DnsServerResourceRecord -Srv -ZoneName contoso.com -Name _pop3s._tcp "
        "-DomainName mail.contoso.com -Priority 0 -Weight 1 -Port 995`, and remove "
        '`_pop3._tcp` or publish it with target `.` ("not offered"). Generic zone file: '
        "`_pop3s._tcp IN SRV 0 1 995 mail.contoso.com.` and `_pop3._tcp IN SRV 0 0 0 .`."
    ),
}


def remediation_for(check_id: str) -> str:
    """The remediation text for a check id; empty for an id without one."""
    return REMEDIATION.get(check_id, "")
