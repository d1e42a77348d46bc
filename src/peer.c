/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "macro.h"
#include "peer.h"

static void read_comm(pid_t pid, char comm[static 17]) {
        char path[64];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        comm[0] = '\0';
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        n = read(fd, comm, 16);
        if (n <= 0)
                return;
        comm[n] = '\0';
        comm[strcspn(comm, "\n")] = '\0';
        /* The name is the peer's to choose: keep it printable. */
        for (char *c = comm; *c; c++)
                if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
                        *c = '?';
}

int peer_from_fd(int fd, Peer *ret) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);

        *ret = (Peer) {};
        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;

        if (sa.ss_family == AF_UNIX) {
                struct ucred cred;
                socklen_t clen = sizeof(cred);

                ret->is_unix = true;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
                        return -errno;
                ret->have_creds = true;
                ret->pid = cred.pid;
                ret->uid = cred.uid;
                ret->gid = cred.gid;
                read_comm(cred.pid, ret->comm);
                return 0;
        }

        len = sizeof(sa);
        if (getpeername(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        if (sa.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &sa;
                inet_ntop(AF_INET, &in->sin_addr, ret->address, sizeof(ret->address));
                ret->port = ntohs(in->sin_port);
        } else if (sa.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, ret->address, sizeof(ret->address));
                ret->port = ntohs(in6->sin6_port);
        } else
                return -EAFNOSUPPORT;
        return 0;
}

const char *peer_describe(const Peer *p, char *buf, size_t size) {
        if (p->is_unix && p->have_creds)
                snprintf(buf, size, "uid %u (pid %d, %s)", (unsigned) p->uid, (int) p->pid,
                         p->comm[0] ? p->comm : "?");
        else if (p->is_unix)
                snprintf(buf, size, "an unknown local peer");
        else if (strchr(p->address, ':'))
                snprintf(buf, size, "[%s]:%u", p->address, p->port);
        else if (p->address[0])
                snprintf(buf, size, "%s:%u", p->address, p->port);
        else
                snprintf(buf, size, "an unknown peer");
        return buf;
}
