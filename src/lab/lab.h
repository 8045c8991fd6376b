/* src/lab/lab.h - the lab: an origin and a client for experiments with connections and
 * authentication handshakes (`shunt lab origin`, `shunt lab client`). */
#ifndef SHUNT_LAB_LAB_H
#define SHUNT_LAB_LAB_H

/* Each takes the arguments after "origin" or "client" (argv[0] is that word) and returns
 * the exit status: 0 success, 1 failure, 2 bad usage. */
int shunt_lab_origin_main(int argc, char **argv);
int shunt_lab_client_main(int argc, char **argv);
int shunt_lab_demo_main(int argc, char **argv);

#endif
