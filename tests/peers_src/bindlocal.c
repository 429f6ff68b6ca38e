/* LD_PRELOAD shim for test peers that cannot choose their listen address
 * (Orthanc 1.10 binds its HTTP and DICOM ports on every interface): any bind()
 * to the wildcard address is rewritten to the loopback address, so servers
 * started by the tests listen on 127.0.0.1 (or ::1) only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind = 0;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in copy;
        memcpy(&copy, addr, sizeof copy);
        if (copy.sin_addr.s_addr == htonl(INADDR_ANY)) copy.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
    }
    if (addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 copy;
        memcpy(&copy, addr, sizeof copy);
        if (memcmp(&copy.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) copy.sin6_addr = in6addr_loopback;
        return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
    }
    return real_bind(fd, addr, len);
}
