"""The POP3 lab: emulated and real POP3 servers, and test certificates, for tests on loopback."""
