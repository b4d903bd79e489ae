#include "reconciler/cli.h"

int main(int argc, char **argv)
{
	return rec_main(argc, argv);
}
