/* tnet.h -- a raw loopback client, shared by the HTTP server's unit tests
 * that speak to it byte by byte (limits, framing). */
#ifndef RT_TNET_H
#define RT_TNET_H
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* A non-blocking client connected (or connecting) to port on 127.0.0.1;
 * -1 when the connect fails at once. */
static inline int client4(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}
#endif
