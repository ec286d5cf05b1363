# Test-only connection plugin of tlsdock's end-to-end tests
# (test/e2e/ansible_test.go). The test hosts are systemd-nspawn machines
# without sshd; the harness runs commands in them with
# `nsenter -t PID -a -- ...` (test/e2e/testhost/exec.go), and so does this
# plugin: every command runs in all of the host's namespaces (its files, its
# systemd, its network), with the host's own binaries and python3.
#
# Not for production: it needs root on the controller and the PID of the
# host's init as seen from the controller (ansible_nsenter_pid).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
    name: tlsdock_nsenter
    short_description: run commands in a local machine's namespaces with nsenter
    description:
        - Runs commands and copies files inside a container or machine on the
          controller whose init is ansible_nsenter_pid, with nsenter -a.
    author: tlsdock maintainers
    options:
      nsenter_pid:
        description: PID of the machine's init (PID 1 inside) on the controller.
        vars:
          - name: ansible_nsenter_pid
        required: true
      executable:
        description: The shell inside.
        vars:
          - name: ansible_executable
        default: /bin/sh
"""

import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.module_utils.six.moves import shlex_quote
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# The environment of commands inside, as testhost.Exec gives them.
GUEST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}


class Connection(ConnectionBase):
    """Commands inside a local machine's namespaces (nsenter -a)."""

    transport = "tlsdock_nsenter"
    has_pipelining = True
    default_user = "root"

    def _connect(self):
        if not self._connected:
            pid = str(self.get_option("nsenter_pid"))
            if not pid.isdigit():
                raise AnsibleConnectionFailure("ansible_nsenter_pid %r is not a PID" % pid)
            self._pid = pid
            self._connected = True
        return self

    def _run(self, argv, stdin=subprocess.PIPE):
        self._connect()
        cmd = ["nsenter", "-t", self._pid, "-a", "--"] + argv
        display.vvv("NSENTER %s" % " ".join(shlex_quote(a) for a in cmd), host=self._play_context.remote_addr)
        return subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=GUEST_ENV)

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        p = self._run([self.get_option("executable"), "-c", to_native(cmd)])
        stdout, stderr = p.communicate(in_data)
        return p.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        try:
            with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as f:
                p = self._run(["/bin/sh", "-c", "cat > " + shlex_quote(out_path)], stdin=f)
                _, stderr = p.communicate()
        except IOError:
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        if p.returncode != 0:
            raise AnsibleError("failed to transfer %s to %s: %s" % (in_path, out_path, to_native(stderr)))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        p = self._run(["/bin/cat", in_path])
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise AnsibleError("failed to fetch %s: %s" % (in_path, to_native(stderr)))
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as f:
            f.write(stdout)

    def close(self):
        self._connected = False
