/* heapstress entry point; the tool lives in heapstress_lib. */
#include "run.h"

int main(int argc, char **argv)
{
	return hs_main(argc, argv);
}
