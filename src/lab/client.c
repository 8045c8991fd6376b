/* src/lab/client.c - placeholder until `shunt lab client` is written. */
#include <stdio.h>

#include "lab/lab.h"

int shunt_lab_client_main(int argc, char **argv)
{
    fprintf(stderr, "shunt lab client: not written yet\n");
    return 1;
}
