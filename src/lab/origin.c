/* src/lab/origin.c - placeholder until `shunt lab origin` is written. */
#include <stdio.h>

#include "lab/lab.h"

int shunt_lab_origin_main(int argc, char **argv)
{
    fprintf(stderr, "shunt lab origin: not written yet\n");
    return 1;
}
